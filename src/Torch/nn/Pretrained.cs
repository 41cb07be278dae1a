using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Torch.NN;

/// <summary>Loads weights saved by diffusers/transformers (<c>save_pretrained</c>) into a module.</summary>
public static class Pretrained
{
    /// <summary>
    /// The weight file of a model folder: <c>{baseName}.{variant}.safetensors</c> when a variant
    /// ("fp16") is asked for and present, else <c>{baseName}.safetensors</c>, else any single
    /// *.safetensors file. Pickle checkpoints (.bin/.ckpt/.pt) are refused by name.
    /// </summary>
    public static string FindWeights(string directory, string baseName, string? variant = null)
    {
        if (!Directory.Exists(directory)) throw new FileNotFoundException($"{directory}: model folder not found");
        if (variant is not null)
        {
            var withVariant = Path.Combine(directory, $"{baseName}.{variant}.safetensors");
            if (File.Exists(withVariant)) return withVariant;
        }
        var plain = Path.Combine(directory, baseName + ".safetensors");
        if (File.Exists(plain)) return plain;
        var any = Directory.GetFiles(directory, "*.safetensors");
        if (any.Length == 1) return any[0];
        var pickles = Directory.GetFiles(directory).Where(f => f.EndsWith(".bin") || f.EndsWith(".ckpt") || f.EndsWith(".pt") || f.EndsWith(".pth")).ToList();
        if (pickles.Count > 0)
            throw new FileNotFoundException($"{directory}: only pickle weights ({Path.GetFileName(pickles[0])}) found; pickle files are not executed or parsed, convert them to .safetensors");
        throw new FileNotFoundException($"{directory}: no {baseName}.safetensors");
    }

    /// <summary>Loads every tensor of <paramref name="file"/> into <paramref name="module"/> (strict: names and shapes must match exactly).</summary>
    public static void LoadWeights(Module module, string file, bool strict = true)
    {
        using var weights = SafeTensorsFile.Open(file);
        var tensors = weights.LoadAll();
        try
        {
            module.LoadStateDict(tensors, strict);
        }
        catch (StateDictException e)
        {
            throw new InvalidDataException($"{file}: {e.Message}", e);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}

using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// A diffusers model folder: config.json plus diffusion_pytorch_model[.variant].safetensors, read and
/// written the way diffusers' from_pretrained / save_pretrained do.
/// </summary>
public static class ModelFiles
{
    public const string ConfigName = "config.json";
    public const string WeightsName = "diffusion_pytorch_model";

    /// <summary>Reads and validates <c>directory/config.json</c>; any error names the file.</summary>
    public static TConfig LoadConfig<TConfig>(string directory, string className, Action<TConfig> validate)
    {
        var path = Path.Combine(directory, ConfigName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: not found (expected a diffusers {className} folder)", path);
        var recorded = ConfigJson.ClassName(path);
        if (recorded is not null && recorded != className)
            throw new ConfigException($"{path}: field '_class_name' is \"{recorded}\", expected \"{className}\"");
        var config = ConfigJson.Load<TConfig>(path);
        try
        {
            validate(config);
        }
        catch (Exception e) when (e is ConfigException or ArgumentException)
        {
            throw new ConfigException($"{path}: {e.Message}", e);
        }
        return config;
    }

    /// <summary>
    /// Builds a model without drawing random weights and loads every tensor of the folder's weight file
    /// into it (strict: names and shapes must match exactly; fp16 files load into fp32 models).
    /// </summary>
    public static TModel Load<TModel>(string directory, Func<TModel> create, string? variant) where TModel : Module
    {
        TModel model;
        using (Init.SkipInitialization()) model = create();
        try
        {
            LoadWeights(model, Pretrained.FindWeights(directory, WeightsName, variant));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// Loads a safetensors file into <paramref name="model"/>, first renaming the weights of the old
    /// AttentionBlock (query, key, value, proj_attn → to_q, to_k, to_v, to_out.0) as diffusers does.
    /// </summary>
    public static void LoadWeights(Module model, string file)
    {
        var tensors = SafeTensorsFile.LoadFile(file);
        try
        {
            RenameDeprecatedAttentionWeights(model, tensors);
            model.LoadStateDict(tensors, strict: true);
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

    private static readonly (string Old, string New)[] DeprecatedAttentionNames =
        [("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0")];

    internal static void RenameDeprecatedAttentionWeights(Module model, Dictionary<string, Tensor> tensors)
    {
        foreach (var (path, module) in model.NamedModules())
        {
            if (module is not Attention { FromDeprecatedAttnBlock: true }) continue;
            foreach (var (old, replacement) in DeprecatedAttentionNames)
                foreach (var kind in new[] { "weight", "bias" })
                    if (tensors.Remove($"{path}.{old}.{kind}", out var t)) tensors[$"{path}.{replacement}.{kind}"] = t;
        }
    }

    /// <summary>Writes config.json and diffusion_pytorch_model.safetensors in diffusers' layout (atomically each).</summary>
    public static void Save<TConfig>(string directory, Module model, TConfig config, string className)
    {
        Directory.CreateDirectory(directory);
        ConfigJson.Save(Path.Combine(directory, ConfigName), config, className);
        SafeTensorsFile.Save(Path.Combine(directory, WeightsName + ".safetensors"), model.StateDict(),
            new Dictionary<string, string> { ["format"] = "pt" });
    }
}

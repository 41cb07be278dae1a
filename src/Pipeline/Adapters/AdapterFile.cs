using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>Opening adapter files (LoRA, embeddings): safetensors only; pickle files are refused before a byte is read.</summary>
internal static class AdapterFile
{
    private static readonly string[] PickleExtensions = [".pt", ".pth", ".bin", ".ckpt"];

    /// <summary>
    /// Opens <paramref name="path"/> as safetensors. A missing file, or a pickle file (.pt/.pth/.bin/.ckpt, which
    /// AUTOMATIC1111 and diffusers unpickle and so may run arbitrary code), is one line naming it and the way out.
    /// </summary>
    public static SafeTensorsFile Open(string path, string what)
    {
        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (PickleExtensions.Contains(extension))
            throw new NotSupportedException($"{path}: {what} files in pickle format ({extension}) are not loaded (unpickling can run arbitrary code); convert it to .safetensors first (e.g. safetensors.torch.save_file(torch.load(f), \"{Path.GetFileNameWithoutExtension(path)}.safetensors\") in a trusted Python)");
        if (Directory.Exists(path)) throw new FileNotFoundException($"{path}: is a directory, not a {what} file");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: {what} file not found");
        return SafeTensorsFile.Open(path);
    }
}

namespace LatentDiffusion.Tests.Common;

/// <summary>
/// The tiny golden Stable Diffusion model (../shared/golden/sd_tiny, copied into tests/fixtures by
/// component) assembled into one diffusers folder: model_index.json, scheduler/, unet/, vae/,
/// text_encoder/, tokenizer/.
/// </summary>
public static class TinyStableDiffusionFolder
{
    public static string Assemble(string target)
    {
        var fixtures = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures");
        Copy(Path.Combine(fixtures, "pipeline/sd_tiny"), target);
        Copy(Path.Combine(fixtures, "latentunet/sd_tiny/unet"), Path.Combine(target, "unet"));
        Copy(Path.Combine(fixtures, "autoencoder/sd_tiny_vae"), Path.Combine(target, "vae"));
        Copy(Path.Combine(fixtures, "textencoder/clip/sd_tiny_text_encoder"), Path.Combine(target, "text_encoder"));
        Copy(Path.Combine(fixtures, "textencoder/tokenizer_tiny"), Path.Combine(target, "tokenizer"));
        return target;
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
        foreach (var dir in Directory.GetDirectories(from)) Copy(dir, Path.Combine(to, Path.GetFileName(dir)));
    }
}

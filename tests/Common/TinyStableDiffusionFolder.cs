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

    /// <summary>
    /// The same model with the 9-channel inpainting U-Net of ../shared/golden/v2/sd_inpaint_tiny and its DDIM scheduler,
    /// as a StableDiffusionInpaintPipeline folder.
    /// </summary>
    public static string AssembleInpainting(string target)
    {
        Assemble(target);
        foreach (var part in new[] { "unet", "scheduler" })
        {
            Directory.Delete(Path.Combine(target, part), recursive: true);
            Copy(Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "pipeline", "sd_inpaint_tiny", part), Path.Combine(target, part));
        }
        var index = Path.Combine(target, "model_index.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(index))!;
        json["_class_name"] = "StableDiffusionInpaintPipeline";
        json["scheduler"] = new System.Text.Json.Nodes.JsonArray("diffusers", "DDIMScheduler");
        File.WriteAllText(index, json.ToJsonString());
        return target;
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
        foreach (var dir in Directory.GetDirectories(from)) Copy(dir, Path.Combine(to, Path.GetFileName(dir)));
    }
}

using System.Text.Json.Nodes;
using LatentDiffusion.Cli.Generation;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>A Stable Diffusion model folder to mutate, with the image size it makes by default.</summary>
public sealed record FuzzModel(string Path, int Size)
{
    /// <summary>The default size: the U-Net's sample_size × the VAE's factor (2^(blocks − 1)).</summary>
    public static FuzzModel Of(string path)
    {
        var unet = JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(path, "unet", "config.json")))!;
        var vae = JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(path, "vae", "config.json")))!;
        var factor = 1 << (vae["block_out_channels"]!.AsArray().Count - 1);
        return new(path, unet["sample_size"]!.GetValue<int>() * factor);
    }
}

/// <summary>What the fuzzer mutates: small Stable Diffusion folders and a pixel-DDPM folder for <c>ldm sample</c>.</summary>
public sealed record FuzzSources(IReadOnlyList<FuzzModel> Models, string? DdpmModel)
{
    /// <summary>The repository's embedded models (models/fashion-colours and models/fashion-ddpm).</summary>
    public static FuzzSources Embedded()
    {
        var colours = DefaultModel.Resolve(null);
        var ddpm = Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(colours))!, "fashion-ddpm");
        return new([FuzzModel.Of(colours)], File.Exists(Path.Combine(ddpm, "model_index.json")) ? ddpm : null);
    }
}

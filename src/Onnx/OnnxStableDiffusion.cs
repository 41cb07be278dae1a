using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.Onnx;

/// <summary>
/// Loads an ONNX Stable Diffusion folder into the one <see cref="StableDiffusionPipeline"/>: diffusers'
/// OnnxStableDiffusionPipeline layout (model_index.json; text_encoder/, unet/ (+ external weights), vae_decoder/,
/// vae_encoder/ each with model.onnx; tokenizer/, scheduler/) and optimum's (the same folders, each with its
/// config.json). The tokenizer, schedulers, guidance, seeds, previews and PNG parameters are the pipeline's own.
/// </summary>
public static class OnnxStableDiffusion
{
    public const string ModelFile = "model.onnx";

    /// <summary>Whether <paramref name="path"/> is an ONNX pipeline folder (it has unet/model.onnx).</summary>
    public static bool IsOnnxFolder(string path) => Directory.Exists(path) && File.Exists(Path.Combine(path, "unet", ModelFile));

    /// <summary>
    /// The pipeline over ONNX Runtime sessions. The pipeline's own tensors stay on the CPU in float32 (float16 graphs
    /// are fed converted tensors); <paramref name="engine"/> picks the execution provider and threads.
    /// </summary>
    public static StableDiffusionPipeline FromPretrained(string path, OnnxEngineOptions? engine = null, PipelineOptions? options = null)
    {
        engine ??= new OnnxEngineOptions();
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"{path}: model folder not found");
        if (!IsOnnxFolder(path)) throw new InvalidDataException($"{path}: not an ONNX Stable Diffusion folder (no unet/{ModelFile})");
        options = (options ?? new PipelineOptions()) with { Device = Device.CPU, DType = DType.Float32 };
        var tokenizer = ClipTokenizer.FromDirectory(Folder(path, "tokenizer"));
        var scheduler = SchedulerConfig.Load(Folder(path, "scheduler"));
        var models = Load(path, engine);
        try
        {
            return new StableDiffusionPipeline(tokenizer, models, scheduler, ModelName(path), options);
        }
        catch
        {
            models.Dispose();
            throw;
        }
    }

    /// <summary>The three networks of an ONNX folder as sessions.</summary>
    public static PipelineModels Load(string path, OnnxEngineOptions engine)
    {
        var textConfig = Config<ClipTextConfig>(path, "text_encoder", null);
        var unetConfig = Config<UNet2DConditionModelConfig>(path, "unet", "sd15-unet.json")!;
        var vaeConfig = Config<AutoencoderKLConfig>(path, "vae_decoder", "sd15-vae.json")!;
        var encoder = Path.Combine(path, "vae_encoder", ModelFile);
        OnnxTextEncoder? text = null;
        OnnxDenoiser? unet = null;
        try
        {
            text = OnnxTextEncoder.Open(Graph(path, "text_encoder"), textConfig?.NumHiddenLayers, engine);
            unet = OnnxDenoiser.Open(Graph(path, "unet"), unetConfig, engine);
            if (vaeConfig.LatentChannels != unet.LatentChannels)
                throw new InvalidDataException($"{path}: the VAE has {vaeConfig.LatentChannels} latent channels but the U-Net denoises {unet.LatentChannels}");
            var vae = OnnxAutoencoder.Open(Graph(path, "vae_decoder"), File.Exists(encoder) ? encoder : null, vaeConfig, engine);
            return new PipelineModels(text, unet, vae);
        }
        catch
        {
            unet?.Dispose();
            text?.Dispose();
            throw;
        }
    }

    private static string Folder(string path, string name) =>
        Directory.Exists(Path.Combine(path, name)) ? Path.Combine(path, name) : throw new DirectoryNotFoundException($"{path}: component folder '{name}/' is missing");

    private static string Graph(string path, string component)
    {
        var file = Path.Combine(Folder(path, component), ModelFile);
        return File.Exists(file) ? file : throw new FileNotFoundException($"{path}: {component}/{ModelFile} is missing", file);
    }

    // optimum writes each component's config.json beside its graph; diffusers' ONNX layout has none, and its pipeline
    // assumes Stable Diffusion 1.x's architecture (4 latent channels, factor 8, scaling 0.18215): so do we.
    private static T? Config<T>(string path, string component, string? fallback) where T : class, IModelConfig<T>
    {
        var file = Path.Combine(path, component, "config.json");
        if (File.Exists(file)) return ModelConfig.Load<T>(file);
        if (fallback is null) return null;
        using var stream = typeof(StableDiffusionPipeline).Assembly.GetManifestResourceStream("configs/models/" + fallback)
            ?? throw new InvalidOperationException($"embedded config {fallback} is missing from the build");
        using var reader = new StreamReader(stream);
        return ModelConfig.Parse<T>(reader.ReadToEnd(), fallback);
    }

    private static string ModelName(string path) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)));
}

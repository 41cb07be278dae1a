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
/// config.json), including optimum's SDXL layout (ORTStableDiffusionXLPipeline: text_encoder_2/ and tokenizer_2/ beside
/// them, a U-Net taking text_embeds and time_ids; a refiner, ORTStableDiffusionXLImg2ImgPipeline, has text_encoder_2/
/// only). The tokenizer, schedulers, guidance, seeds, previews and PNG parameters are the pipeline's own.
/// </summary>
public static class OnnxStableDiffusion
{
    public const string ModelFile = "model.onnx";

    /// <summary>Whether <paramref name="path"/> is an ONNX pipeline folder (it has unet/model.onnx).</summary>
    public static bool IsOnnxFolder(string path) => Directory.Exists(path) && File.Exists(Path.Combine(path, "unet", ModelFile));

    /// <summary>model_index.json _class_names of SDXL ONNX folders: optimum's, and the diffusers classes its export keeps.</summary>
    public static IReadOnlyList<string> XlClasses { get; } =
        ["ORTStableDiffusionXLPipeline", "ORTStableDiffusionXLImg2ImgPipeline", .. StableDiffusionPipeline.XlPipelineClasses];

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
        var xl = XlSettingsOf(path);
        var scheduler = SchedulerConfig.Load(Folder(path, "scheduler"));
        var tokenizer2 = xl is null ? null : ClipTokenizer.FromDirectory(Folder(path, "tokenizer_2"));
        var tokenizer = xl is null || HasGraph(path, "text_encoder") ? ClipTokenizer.FromDirectory(Folder(path, "tokenizer")) : null;
        var models = Load(path, engine, xl);
        try
        {
            // an SDXL refiner's one encoder is its text_encoder_2, with tokenizer_2 as the pipeline's Tokenizer
            return tokenizer is null
                ? new StableDiffusionPipeline(tokenizer2!, null, models, xl, scheduler, ModelName(path), options)
                : new StableDiffusionPipeline(tokenizer, tokenizer2, models, xl, scheduler, ModelName(path), options);
        }
        catch
        {
            models.Dispose();
            throw;
        }
    }

    /// <summary>The networks of an ONNX folder as sessions; <paramref name="xl"/> (an SDXL folder) adds text_encoder_2.</summary>
    public static PipelineModels Load(string path, OnnxEngineOptions engine, XlSettings? xl = null)
    {
        var refiner = xl?.RequiresAestheticsScore == true;
        var unetConfig = Config<UNet2DConditionModelConfig>(path, "unet", xl is null ? "sd15-unet.json" : refiner ? "sdxl-refiner-unet.json" : "sdxl-base-unet.json")!;
        var vaeConfig = Config<AutoencoderKLConfig>(path, "vae_decoder", xl is null ? "sd15-vae.json" : "sdxl-base-vae.json")!;
        var encoder = Path.Combine(path, "vae_encoder", ModelFile);
        var opened = new List<IDisposable>();
        try
        {
            var text = xl is null || HasGraph(path, "text_encoder") ? Track(opened, TextEncoder(path, "text_encoder", engine)) : null;
            var text2 = xl is null ? null : Track(opened, TextEncoder(path, "text_encoder_2", engine));
            var unet = Track(opened, OnnxDenoiser.Open(Graph(path, "unet"), unetConfig, engine));
            if (xl is null && unet.TakesAddedConditions)
                throw new InvalidDataException($"{path}: the U-Net takes SDXL's text_embeds and time_ids, but the folder is no SDXL folder (no text_encoder_2/, model_index.json names no XL pipeline)");
            if (xl is not null) CheckXl(path, xl, text, text2!, unet);
            if (vaeConfig.LatentChannels != unet.LatentChannels)
                throw new InvalidDataException($"{path}: the VAE has {vaeConfig.LatentChannels} latent channels but the U-Net denoises {unet.LatentChannels}");
            var vae = OnnxAutoencoder.Open(Graph(path, "vae_decoder"), File.Exists(encoder) ? encoder : null, vaeConfig, engine);
            // a refiner conditions through its one encoder, text_encoder_2, in the first place
            return text is null ? new PipelineModels(text2!, unet, vae) : new PipelineModels(text, unet, vae, text2);
        }
        catch
        {
            foreach (var d in opened) d.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The SDXL settings of an ONNX folder (model_index.json's force_zeros_for_empty_prompt and requires_aesthetics_score, as
    /// diffusers stores them), or null for Stable Diffusion 1.x/2.x. It is SDXL when model_index.json names an XL pipeline
    /// or the folder has text_encoder_2/; an XL folder without text_encoder_2/model.onnx is one line.
    /// </summary>
    public static XlSettings? XlSettingsOf(string path)
    {
        var index = File.Exists(Path.Combine(path, "model_index.json")) ? ModelIndex.Load(path) : null;
        var named = index is not null && XlClasses.Contains(index.ClassName);
        if (!named && !Directory.Exists(Path.Combine(path, "text_encoder_2"))) return null;
        if (!HasGraph(path, "text_encoder_2"))
            throw new InvalidDataException($"{path}: an SDXL ONNX folder needs text_encoder_2/{ModelFile} (the OpenCLIP encoder with projection, which gives the pooled embeddings){(named ? $"; model_index.json names {index!.ClassName}" : "")}");
        return new XlSettings(index?.Flag("force_zeros_for_empty_prompt", true) ?? true, index?.Flag("requires_aesthetics_score", false) ?? false);
    }

    // One line for SDXL parts that do not fit: the U-Net must take text_embeds and time_ids (6 ids, 5 for a refiner), the
    // encoders must give hidden states (and text_encoder_2 the pooled text_embeds), and their widths must sum to the U-Net's.
    private static void CheckXl(string path, XlSettings xl, OnnxTextEncoder? text, OnnxTextEncoder text2, OnnxDenoiser unet)
    {
        if (!unet.TakesAddedConditions)
            throw new InvalidDataException($"{path}: an SDXL folder needs a U-Net taking text_embeds and time_ids, but {unet.Path} does not (not an SDXL U-Net; export one with `ldm export onnx`)");
        text?.RequireXl(pooled: false);
        text2.RequireXl(pooled: true);
        var ids = xl.RequiresAestheticsScore ? 5 : 6;
        var (pooledWidth, idWidth) = unet.AddedWidths;
        if (idWidth is { } n && n != ids)
            throw new InvalidDataException($"{path}: requires_aesthetics_score is {(xl.RequiresAestheticsScore ? "true (5 time ids)" : "false (6 time ids)")} but the U-Net takes {n} time ids{(n == 5 ? " (a refiner? set requires_aesthetics_score in model_index.json)" : "")}");
        if (pooledWidth is { } p && text2.PooledWidth is { } q && p != q)
            throw new InvalidDataException($"{path}: text_encoder_2's pooled embedding is {q} wide but the U-Net's text_embeds take {p}");
        if (unet.ContextWidth is { } w && text2.Width is { } w2 && (text is null ? 0 : text.Width ?? w - w2) + w2 != w)
            throw new InvalidDataException($"{path}: the text encoders give {(text is null ? "" : $"{text.Width} + ")}{w2} channels but the U-Net's encoder_hidden_states take {w}");
    }

    private static OnnxTextEncoder TextEncoder(string path, string component, OnnxEngineOptions engine) =>
        OnnxTextEncoder.Open(Graph(path, component), Config<ClipTextConfig>(path, component, null), engine);

    private static T Track<T>(List<IDisposable> opened, T item) where T : IDisposable
    {
        opened.Add(item);
        return item;
    }

    private static bool HasGraph(string path, string component) => File.Exists(Path.Combine(path, component, ModelFile));

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

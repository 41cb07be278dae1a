using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// Loading: diffusers pipeline folders and single-file checkpoints in the original layout.
public sealed partial class StableDiffusionPipeline
{
    /// <summary>The model_index.json <c>_class_name</c>s this pipeline loads.</summary>
    public static IReadOnlyList<string> PipelineClasses { get; } = ["StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"];

    /// <summary>Loads a diffusers folder (model_index.json) or a single-file .safetensors checkpoint.</summary>
    public static StableDiffusionPipeline FromPretrained(string path, PipelineOptions? options = null)
    {
        // Each weight in its own mapping while it is read and converted: what the conversion frees, and a convolution's
        // plain weight released once it is packed, go back to the system instead of staying as heap holes (issue 19).
        using (Torch.NativeHeap.MapWeights()) return Load(path, options ?? new PipelineOptions());
    }

    private static StableDiffusionPipeline Load(string path, PipelineOptions options)
    {
        if (File.Exists(path)) return FromSingleFile(path, options);
        var index = ModelIndex.Load(path);
        if (XlPipelineClasses.Contains(index.ClassName)) return FromXlFolder(path, index, options);
        if (!PipelineClasses.Contains(index.ClassName))
            throw new InvalidDataException($"{path}: model_index.json describes a {index.ClassName}; supported: {string.Join(", ", PipelineClasses.Concat(XlPipelineClasses))}");

        var tokenizerPath = index.Require(path, "tokenizer", "CLIPTokenizer", "CLIPTokenizerFast");
        var tokenizer = ClipTokenizer.FromDirectory(tokenizerPath);
        var scheduler = SchedulerConfig.Load(index.Require(path, "scheduler", [.. SchedulerConfig.SupportedClassNames]));
        // Checked before any weights are read: a tokenizer whose ids the text encoder cannot embed fails at the first prompt.
        var textEncoderPath = index.Require(path, "text_encoder", "CLIPTextModel");
        var textEncoderConfig = Path.Combine(textEncoderPath, Pretrained.ConfigName);
        TokenizerFit.Check(tokenizer, ClipTextConfig.Load(textEncoderConfig), tokenizerPath, textEncoderConfig);
        var disposables = new List<IDisposable>();
        try
        {
            // Loaded for inference, frozen (a trainer unfreezes what it trains): a convolution then keeps one copy of its weight.
            var textEncoder = Track(disposables, ClipTextModel.FromPretrained(textEncoderPath, dtype: LoadDType(options), variant: options.Variant).RequiresGrad(false));
            var unet = Track(disposables, UNet2DConditionModel.FromPretrained(index.Require(path, "unet", "UNet2DConditionModel"), dtype: LoadDType(options), variant: options.Variant).RequiresGrad(false));
            var vae = Track(disposables, AutoencoderKL.FromPretrained(index.Require(path, "vae", "AutoencoderKL"), variant: options.Variant).RequiresGrad(false));
            return new StableDiffusionPipeline(tokenizer, textEncoder, unet, vae, scheduler, ModelNameOf(path), options);
        }
        catch
        {
            foreach (var d in disposables) d.Dispose();
            throw;
        }
    }

    // The U-Net and text encoders are read straight into the compute dtype (a bf16 pipeline never holds an f32 copy of
    // them: issue 19); the VAE is read as stored and converted by TorchModels, which knows its force_upcast.
    private static DType? LoadDType(PipelineOptions options) => options.DType == DType.Float32 ? null : options.DType;

    // Modules built under Init.SkipInitialization have unwritten tensors: converting them before the weights are copied in costs no memory.
    private static void InLoadDType(PipelineOptions options, params Module?[] models)
    {
        if (LoadDType(options) is not { } dtype) return;
        foreach (var m in models) m?.To(dtype);
    }

    private static T Track<T>(List<IDisposable> list, T item) where T : IDisposable
    {
        list.Add(item);
        return item;
    }

    private static string ModelNameOf(string path) => Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)));

    // Loaded for inference, frozen (a trainer unfreezes what it trains): a convolution then keeps one copy of its weight.
    private static void Freeze(params Module?[] models)
    {
        foreach (var m in models) m?.RequiresGrad(false);
    }

    /// <summary>
    /// A single-file Stable Diffusion 1.x/2.x checkpoint: the family is inferred from the weights
    /// (or <see cref="PipelineOptions.CheckpointKind"/>), the architecture comes from the family's
    /// configs, and the tensors are renamed to diffusers' names on load.
    /// </summary>
    public static StableDiffusionPipeline FromSingleFile(string path, PipelineOptions? options = null)
    {
        options ??= new PipelineOptions();
        using var checkpoint = SingleFileCheckpoint.Open(path, options.CheckpointKind);
        var configs = options.ConfigSource is { } source ? FamilyConfigs.FromFolder(source) : FamilyConfigs.For(checkpoint.Kind);
        if (checkpoint.Kind.IsXl || configs.Xl is not null) return FromXlSingleFile(path, checkpoint, configs, options);
        var tokenizer = LoadTokenizer(path, options.TokenizerPath ?? (options.ConfigSource is { } s ? Path.Combine(s, "tokenizer") : null));
        TokenizerFit.Check(tokenizer, configs.TextEncoder!, "the tokenizer", options.ConfigSource is { } c ? Path.Combine(c, "text_encoder") : "the text encoder's config");
        var disposables = new List<IDisposable>();
        try
        {
            using var skip = Init.SkipInitialization();
            // in_channels from the weights (9 for SD1.5/SD2 inpainting checkpoints), as diffusers' single-file loader does
            var unet = Track(disposables, new UNet2DConditionModel(configs.Unet with { InChannels = checkpoint.UNetInChannels }));
            var vae = Track(disposables, new AutoencoderKL(configs.Vae));
            var textEncoder = Track(disposables, new ClipTextModel(configs.TextEncoder!));
            InLoadDType(options, unet, textEncoder);
            LoadComponent(checkpoint, "unet", unet, null);
            LoadComponent(checkpoint, "vae", vae, null);
            LoadComponent(checkpoint, "text_encoder", textEncoder, configs.TextEncoder!.NumHiddenLayers);
            Freeze(unet, vae, textEncoder);
            return new StableDiffusionPipeline(tokenizer, textEncoder, unet, vae, configs.Scheduler, ModelNameOf(path), options);
        }
        catch
        {
            foreach (var d in disposables) d.Dispose();
            throw;
        }
    }

    internal static void LoadComponent(SingleFileCheckpoint checkpoint, string component, Module module, int? maxTextLayers)
    {
        var tensors = checkpoint.Load(component, maxTextLayers: maxTextLayers);
        try
        {
            Pretrained.RequireFinite(checkpoint.FilePath, tensors);
            // Strict; the position_ids buffer some transformers versions saved is dropped by ClipTextModel's upgrade hook.
            module.LoadStateDict(tensors, strict: true);
        }
        catch (StateDictException e)
        {
            throw new InvalidDataException($"{checkpoint.FilePath}: the {component} tensors do not fit the {checkpoint.Kind.Family} architecture: {e.Message}", e);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Single files carry no tokenizer: an explicit path, a tokenizer/ folder beside the file, or LDM_CLIP_TOKENIZER.</summary>
    internal static ClipTokenizer LoadTokenizer(string checkpointPath, string? explicitPath)
    {
        var candidates = new[]
        {
            explicitPath,
            Path.Combine(Path.GetDirectoryName(Path.GetFullPath(checkpointPath))!, "tokenizer"),
            Environment.GetEnvironmentVariable("LDM_CLIP_TOKENIZER"),
        };
        foreach (var candidate in candidates)
        {
            if (string.IsNullOrEmpty(candidate)) continue;
            if (Directory.Exists(candidate)) return ClipTokenizer.FromDirectory(candidate);
            if (File.Exists(candidate)) return ClipTokenizer.FromOpenAiBpe(candidate);
            if (candidate == explicitPath) throw new FileNotFoundException($"{candidate}: tokenizer not found");
        }
        throw new FileNotFoundException($"{checkpointPath}: a single-file checkpoint has no tokenizer; pass a CLIP tokenizer (a tokenizer/ folder of a diffusers model, or OpenAI's bpe_simple_vocab_16e6.txt.gz) with --tokenizer or LDM_CLIP_TOKENIZER, or put a tokenizer/ folder beside the checkpoint");
    }
}

/// <summary>
/// The architecture configs of a Stable Diffusion family (embedded from configs/models/). SDXL adds its second text
/// encoder and settings; the SDXL refiner has only the second encoder (<see cref="TextEncoder"/> null).
/// </summary>
internal sealed record FamilyConfigs(UNet2DConditionModelConfig Unet, AutoencoderKLConfig Vae, ClipTextConfig? TextEncoder, SchedulerConfig Scheduler,
    ClipTextConfig? TextEncoder2 = null, XlSettings? Xl = null)
{
    public static FamilyConfigs For(CheckpointKind kind)
    {
        var prefix = kind.Family switch
        {
            ModelFamily.StableDiffusion1 => "sd15",
            ModelFamily.StableDiffusion2 => "sd21",
            ModelFamily.StableDiffusionXL => "sdxl-base",
            _ => "sdxl-refiner",
        };
        var unet = Embedded<UNet2DConditionModelConfig>($"{prefix}-unet.json");
        var vae = Embedded<AutoencoderKLConfig>($"{prefix}-vae.json");
        var text = kind.Family == ModelFamily.StableDiffusionXLRefiner ? null : Embedded<ClipTextConfig>($"{prefix}-text-encoder.json");
        var text2 = kind.IsXl ? Embedded<ClipTextConfig>($"{prefix}-text-encoder-2.json") : null;
        // stabilityai's model_index.json: the base zeroes an empty negative prompt, the refiner conditions on aesthetic scores.
        var xl = kind.IsXl ? new XlSettings(kind.Family == ModelFamily.StableDiffusionXL, kind.Family == ModelFamily.StableDiffusionXLRefiner) : null;
        var scheduler = SchedulerConfig.Parse(Resource($"{prefix}-scheduler.json"));
        scheduler = scheduler.ConvertTo(scheduler.ClassName, new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["prediction_type"] = kind.PredictionType });
        return new FamilyConfigs(unet, vae, text, scheduler, text2, xl);
    }

    /// <summary>The component configs of a diffusers folder (SD, SDXL base or SDXL refiner).</summary>
    public static FamilyConfigs FromFolder(string directory)
    {
        var index = ModelIndex.Load(directory);
        var unet = UNet2DConditionModelConfig.Load(Path.Combine(index.Require(directory, "unet", "UNet2DConditionModel"), Pretrained.ConfigName));
        var vae = AutoencoderKLConfig.Load(Path.Combine(index.Require(directory, "vae", "AutoencoderKL"), Pretrained.ConfigName));
        var scheduler = SchedulerConfig.Load(index.Require(directory, "scheduler"));
        ClipTextConfig Text(string name, string cls) => ClipTextConfig.Load(Path.Combine(index.Require(directory, name, cls), Pretrained.ConfigName));
        if (!index.Components.ContainsKey("text_encoder_2"))
            return new FamilyConfigs(unet, vae, Text("text_encoder", "CLIPTextModel"), scheduler);
        var xl = new XlSettings(index.Flag("force_zeros_for_empty_prompt", true), index.Flag("requires_aesthetics_score", false));
        var first = index.Components.ContainsKey("text_encoder") ? Text("text_encoder", "CLIPTextModel") : null;
        return new FamilyConfigs(unet, vae, first, scheduler, Text("text_encoder_2", "CLIPTextModelWithProjection"), xl);
    }

    private static T Embedded<T>(string name) where T : IModelConfig<T> => ModelConfig.Parse<T>(Resource(name), name);

    internal static string Resource(string name)
    {
        using var stream = typeof(FamilyConfigs).Assembly.GetManifestResourceStream("configs/models/" + name)
            ?? throw new InvalidOperationException($"embedded config {name} is missing from the build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

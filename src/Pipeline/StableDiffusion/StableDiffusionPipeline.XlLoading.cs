using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// Loading SDXL diffusers folders: the base (text_encoder/ + text_encoder_2/) and the refiner (text_encoder_2/ only).
public sealed partial class StableDiffusionPipeline
{
    /// <summary>The model_index.json <c>_class_name</c>s of the SDXL folders this pipeline loads.</summary>
    public static IReadOnlyList<string> XlPipelineClasses { get; } = ["StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"];

    /// <summary>
    /// An SDXL folder: every config is read and checked against the others (the encoders' widths against the U-Net's
    /// cross_attention_dim, the pooled width and time ids against its add_embedding) before any weights are read.
    /// </summary>
    private static StableDiffusionPipeline FromXlFolder(string path, ModelIndex index, PipelineOptions options)
    {
        var hasFirst = index.Components.ContainsKey("text_encoder");
        if (!index.Components.ContainsKey("text_encoder_2"))
            throw new InvalidDataException($"{path}: an SDXL folder needs text_encoder_2/ (the OpenCLIP encoder with projection, which gives the pooled embeddings); " +
                $"model_index.json lists {(hasFirst ? "only text_encoder" : "no text encoder")}");
        var xl = new XlSettings(index.Flag("force_zeros_for_empty_prompt", true), index.Flag("requires_aesthetics_score", false));

        var tokenizer2Path = index.Require(path, "tokenizer_2", "CLIPTokenizer", "CLIPTokenizerFast");
        var encoder2Path = index.Require(path, "text_encoder_2", "CLIPTextModelWithProjection");
        var encoder2Config = ClipTextConfig.Load(Path.Combine(encoder2Path, Pretrained.ConfigName));
        var tokenizer2 = ClipTokenizer.FromDirectory(tokenizer2Path);
        TokenizerFit.Check(tokenizer2, encoder2Config, tokenizer2Path, Path.Combine(encoder2Path, Pretrained.ConfigName));
        string? encoder1Path = null;
        ClipTextConfig? encoder1Config = null;
        ClipTokenizer? tokenizer1 = null;
        if (hasFirst)
        {
            var tokenizerPath = index.Require(path, "tokenizer", "CLIPTokenizer", "CLIPTokenizerFast");
            encoder1Path = index.Require(path, "text_encoder", "CLIPTextModel");
            encoder1Config = ClipTextConfig.Load(Path.Combine(encoder1Path, Pretrained.ConfigName));
            tokenizer1 = ClipTokenizer.FromDirectory(tokenizerPath);
            TokenizerFit.Check(tokenizer1, encoder1Config, tokenizerPath, Path.Combine(encoder1Path, Pretrained.ConfigName));
        }
        var unetPath = index.Require(path, "unet", "UNet2DConditionModel");
        var unetConfig = UNet2DConditionModelConfig.Load(Path.Combine(unetPath, Pretrained.ConfigName));
        CheckXlFit(path, unetConfig, encoder1Config, encoder2Config, xl);
        var scheduler = SchedulerConfig.Load(index.Require(path, "scheduler", [.. SchedulerConfig.SupportedClassNames]));

        var disposables = new List<IDisposable>();
        try
        {
            var encoder2 = Track(disposables, ClipTextModelWithProjection.FromPretrained(encoder2Path, dtype: LoadDType(options), variant: options.Variant));
            var encoder1 = encoder1Path is null ? null : Track(disposables, ClipTextModel.FromPretrained(encoder1Path, dtype: LoadDType(options), variant: options.Variant));
            var unet = Track(disposables, UNet2DConditionModel.FromPretrained(unetPath, dtype: LoadDType(options), variant: options.Variant));
            var vae = Track(disposables, AutoencoderKL.FromPretrained(index.Require(path, "vae", "AutoencoderKL"), variant: options.Variant));
            Freeze(unet, vae, encoder2, encoder1);
            return encoder1 is null
                ? new StableDiffusionPipeline(tokenizer2, encoder2, null, null, unet, vae, xl, scheduler, ModelNameOf(path), options)
                : new StableDiffusionPipeline(tokenizer1!, encoder1, tokenizer2, encoder2, unet, vae, xl, scheduler, ModelNameOf(path), options);
        }
        catch
        {
            foreach (var d in disposables) d.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One line for an SDXL folder whose parts do not fit together: the U-Net cross-attends to the encoders' hidden states
    /// side by side, and its add_embedding takes the pooled embedding plus 6 time ids (5 with aesthetic scores).
    /// </summary>
    internal static void CheckXlFit(string source, UNet2DConditionModelConfig unet, ClipTextConfig? encoder1, ClipTextConfig encoder2, XlSettings xl)
    {
        if (unet.AdditionEmbedType != "text_time")
            throw new InvalidDataException($"{source}: the U-Net is not an SDXL U-Net (addition_embed_type is {unet.AdditionEmbedType ?? "null"}, SDXL's is \"text_time\")");
        var width = (encoder1?.HiddenSize ?? 0) + encoder2.HiddenSize;
        var described = encoder1 is null ? $"text_encoder_2 gives {width}" : $"the text encoders give {encoder1.HiddenSize} + {encoder2.HiddenSize} = {width}";
        if (unet.CrossAttentionDim.IsList || unet.CrossAttentionDim.Value != width)
            throw new InvalidDataException($"{source}: {described} channels but the U-Net's cross_attention_dim is {unet.CrossAttentionDim}");
        var ids = xl.RequiresAestheticsScore ? 5 : 6;
        var expected = encoder2.ProjectionDim + ids * unet.AdditionTimeEmbedDim!.Value;
        if (expected != unet.ProjectionClassEmbeddingsInputDim)
            throw new InvalidDataException($"{source}: requires_aesthetics_score is {(xl.RequiresAestheticsScore ? "true (5 time ids)" : "false (6 time ids)")}, so add_embedding takes " +
                $"projection_dim {encoder2.ProjectionDim} + {ids} × addition_time_embed_dim {unet.AdditionTimeEmbedDim} = {expected}, but the U-Net's " +
                $"projection_class_embeddings_input_dim is {unet.ProjectionClassEmbeddingsInputDim}" +
                (xl.RequiresAestheticsScore ? "" : " (a refiner? set requires_aesthetics_score in model_index.json)"));
    }

    /// <summary>
    /// A single-file SDXL checkpoint in Stability's layout (conditioner.embedders.*, model.diffusion_model.*,
    /// first_stage_model.*) with the family's configs (or <see cref="PipelineOptions.ConfigSource"/>'s). Single files carry no
    /// tokenizer: both SDXL tokenizers are CLIP's BPE, the second padding with "!" as stabilityai's tokenizer_2 does.
    /// </summary>
    private static StableDiffusionPipeline FromXlSingleFile(string path, SingleFileCheckpoint checkpoint, FamilyConfigs configs, PipelineOptions options)
    {
        if (configs.Xl is not { } xl || configs.TextEncoder2 is not { } encoder2Config)
            throw new InvalidDataException($"{path}: an SDXL checkpoint needs SDXL configs; {options.ConfigSource} is not an SDXL folder");
        CheckXlFit(path, configs.Unet, configs.TextEncoder, encoder2Config, xl);
        var (tokenizer1, tokenizer2) = XlTokenizers(path, options);
        if (configs.TextEncoder is { } c1) TokenizerFit.Check(tokenizer1, c1, "the tokenizer", "the text encoder's config");
        TokenizerFit.Check(tokenizer2, encoder2Config, "the second tokenizer", "the second text encoder's config");
        var disposables = new List<IDisposable>();
        try
        {
            using var skip = Init.SkipInitialization();
            var unet = Track(disposables, new UNet2DConditionModel(configs.Unet));
            var vae = Track(disposables, new AutoencoderKL(configs.Vae));
            var encoder2 = Track(disposables, new ClipTextModelWithProjection(encoder2Config));
            var encoder1 = configs.TextEncoder is { } config1 ? Track(disposables, new ClipTextModel(config1)) : null;
            InLoadDType(options, unet, encoder2, encoder1);
            LoadComponent(checkpoint, "unet", unet, null);
            LoadComponent(checkpoint, "vae", vae, null);
            LoadComponent(checkpoint, "text_encoder_2", encoder2, encoder2Config.NumHiddenLayers);
            if (encoder1 is not null) LoadComponent(checkpoint, "text_encoder", encoder1, configs.TextEncoder!.NumHiddenLayers);
            Freeze(unet, vae, encoder2, encoder1);
            return encoder1 is null
                ? new StableDiffusionPipeline(tokenizer2, encoder2, null, null, unet, vae, xl, configs.Scheduler, ModelNameOf(path), options)
                : new StableDiffusionPipeline(tokenizer1, encoder1, tokenizer2, encoder2, unet, vae, xl, configs.Scheduler, ModelNameOf(path), options);
        }
        catch
        {
            foreach (var d in disposables) d.Dispose();
            throw;
        }
    }

    /// <summary>The config folder's tokenizer/ and tokenizer_2/ when it has them; else the CLIP tokenizer found for single files, twice.</summary>
    private static (ClipTokenizer First, ClipTokenizer Second) XlTokenizers(string path, PipelineOptions options)
    {
        if (options.ConfigSource is { } source && Directory.Exists(Path.Combine(source, "tokenizer_2")))
        {
            var second = ClipTokenizer.FromDirectory(Path.Combine(source, "tokenizer_2"));
            var firstPath = Path.Combine(source, "tokenizer");
            return (Directory.Exists(firstPath) ? ClipTokenizer.FromDirectory(firstPath) : second, second);
        }
        var first = LoadTokenizer(path, options.TokenizerPath ?? (options.ConfigSource is { } s ? Path.Combine(s, "tokenizer") : null));
        var padded = new ClipTokenizer(first.Vocabulary, first.Merges, first.Config with { PadToken = new ClipAddedToken("!") }, first.Options);
        return (first, padded);
    }
}

using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Ldm;

/// <summary>The "tokenizer" section: the BPE vocabulary learned from the caption corpus.</summary>
public sealed record LdmTokenizerOptions
{
    /// <summary>At most this many tokens (byte symbols, merges and the two specials; at least 514).</summary>
    [JsonPropertyName("vocabulary_size")] public int VocabularySize { get; init; } = 1000;

    /// <summary>Sequence length with bos and eos (tokenizer_config.json model_max_length; the text encoder's max_position_embeddings).</summary>
    [JsonPropertyName("model_max_length")] public int ModelMaxLength { get; init; } = 16;
}

/// <summary>The "sampling" section: sample grids during training and the exported pipeline's scheduler.</summary>
public sealed record LdmSamplingOptions
{
    /// <summary>The scheduler_config.json of the export (with _class_name); null: DPMSolverMultistepScheduler on the training betas.</summary>
    [JsonPropertyName("scheduler")] public JsonObject? Scheduler { get; init; }

    [JsonPropertyName("steps")] public int Steps { get; init; } = 30;
    [JsonPropertyName("guidance_scale")] public double GuidanceScale { get; init; } = 4.0;

    /// <summary>Prompts of the sample grids.</summary>
    [JsonPropertyName("prompts")] public string[] Prompts { get; init; } =
        ["a red sneaker", "a blue dress", "a white bag", "a green coat", "a yellow ankle boot", "an orange t-shirt", "a cyan pullover", "a purple sandal"];
}

/// <summary>
/// A text-to-image recipe (configs/train/ldm-*.json): the trained VAE folder (frozen), the tokenizer
/// to learn, the CLIP text encoder and conditional U-Net configs (trained jointly), the DDPM noise
/// schedule of training, the export's scheduler, the Fashion colours data and the shared training
/// options. Relative paths start from the recipe's folder.
/// </summary>
public sealed record LdmRecipe
{
    /// <summary>A diffusers AutoencoderKL folder (the VAE run's model/), relative to the recipe.</summary>
    [JsonPropertyName("vae")] public string Vae { get; init; } = "../../runs/vae-fashion-colours/model";

    /// <summary>"sample" (z ~ q(z|x), diffusers' train_text_to_image) or "mean".</summary>
    [JsonPropertyName("latents")] public string Latents { get; init; } = "sample";

    [JsonPropertyName("tokenizer")] public LdmTokenizerOptions Tokenizer { get; init; } = new();

    /// <summary>CLIPTextConfig; vocab_size, max_position_embeddings and the special token ids are set from the learned tokenizer.</summary>
    [JsonPropertyName("text_encoder")] public JsonObject? TextEncoder { get; init; }

    /// <summary>UNet2DConditionModel config.json.</summary>
    [JsonPropertyName("unet")] public JsonObject? Unet { get; init; }

    /// <summary>The DDPMScheduler config of training (ε-prediction).</summary>
    [JsonPropertyName("noise_scheduler")] public JsonObject? NoiseScheduler { get; init; }

    [JsonPropertyName("sampling")] public LdmSamplingOptions Sampling { get; init; } = new();
    [JsonPropertyName("data")] public FashionColoursDataOptions Data { get; init; } = new();
    [JsonPropertyName("training")] public TrainingOptions Training { get; init; } = new();

    [JsonIgnore] public string? BaseDirectory { get; init; }
    [JsonIgnore] public string Source { get; init; } = "recipe";

    public static LdmRecipe Load(string path) => RecipeJson.Load<LdmRecipe>(path) with
    {
        BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(path)),
        Source = path,
    };

    public static LdmRecipe Parse(string json, string source = "recipe", string? baseDirectory = null) =>
        RecipeJson.Parse<LdmRecipe>(json, source) with { BaseDirectory = baseDirectory, Source = source };

    public string VaeDirectory => Path.GetFullPath(Vae, BaseDirectory ?? Environment.CurrentDirectory);

    private T ParseConfig<T>(JsonObject? node, string field)
    {
        if (node is null) throw new RecipeException($"{Source}: '{field}' is required");
        try
        {
            return ConfigJson.Parse<T>(RecipeJson.Text(node), $"{Source}: {field}", field == "text_encoder" ? ClipTextConfig.GenericKeys : null);
        }
        catch (ConfigException e)
        {
            throw new RecipeException(e.Message, e);
        }
    }

    /// <summary>The text encoder's config for a vocabulary of <paramref name="vocabularySize"/> with these special ids.</summary>
    public ClipTextConfig TextEncoderConfig(int vocabularySize, int bos, int eos)
    {
        var config = ParseConfig<ClipTextConfig>(TextEncoder, "text_encoder") with
        {
            VocabSize = vocabularySize,
            MaxPositionEmbeddings = Tokenizer.ModelMaxLength,
            BosTokenId = bos,
            EosTokenId = eos,
            PadTokenId = eos,
            Architectures = [ClipTextConfig.Architecture],
            ModelTypeName = ClipTextConfig.ModelType,
        };
        try
        {
            config.Validate($"{Source}: text_encoder");
        }
        catch (ConfigException e)
        {
            throw new RecipeException(e.Message, e);
        }
        return config;
    }

    public UNet2DConditionModelConfig UnetConfig()
    {
        var config = ParseConfig<UNet2DConditionModelConfig>(Unet, "unet");
        try
        {
            config.Validate($"{Source}: unet");
        }
        catch (ConfigException e)
        {
            throw new RecipeException(e.Message, e);
        }
        return config;
    }

    public DDPMSchedulerConfig NoiseSchedulerConfig() => NoiseSchedulerSection.Parse(NoiseScheduler, Source);

    /// <summary>The exported pipeline's scheduler: the "sampling.scheduler" config, on the training betas unless it says otherwise.</summary>
    public SchedulerConfig InferenceSchedulerConfig()
    {
        var noise = NoiseSchedulerConfig();
        var json = Sampling.Scheduler?.DeepClone().AsObject() ?? new JsonObject { ["_class_name"] = "DPMSolverMultistepScheduler" };
        foreach (var key in new[] { "num_train_timesteps", "beta_start", "beta_end", "beta_schedule" })
            if (!json.ContainsKey(key)) json[key] = JsonNode.Parse(noise.ToJson()[key]!.ToJsonString());
        json["prediction_type"] ??= "epsilon";
        try
        {
            var config = SchedulerConfig.FromJson(json);
            config.Validate();
            return config;
        }
        catch (SchedulerConfigException e)
        {
            throw new RecipeException($"{Source}: sampling.scheduler: {e.Message}", e);
        }
    }

    public LdmRecipe Validate()
    {
        Training.Validate(Source);
        Data.Validate(Source);
        if (Latents is not ("sample" or "mean")) throw new RecipeException($"{Source}: 'latents' must be \"sample\" or \"mean\" (got \"{Latents}\")");
        if (Tokenizer.VocabularySize < 514) throw new RecipeException($"{Source}: 'tokenizer.vocabulary_size' must be at least 514 (256 bytes × 2 and two specials; got {Tokenizer.VocabularySize})");
        if (Tokenizer.ModelMaxLength < 3) throw new RecipeException($"{Source}: 'tokenizer.model_max_length' must be at least 3 (got {Tokenizer.ModelMaxLength})");
        if (Sampling.Steps < 1) throw new RecipeException($"{Source}: 'sampling.steps' must be positive (got {Sampling.Steps})");
        if (Sampling.Prompts is not { Length: > 0 }) throw new RecipeException($"{Source}: 'sampling.prompts' must list at least one prompt");
        var unet = UnetConfig();
        var text = TextEncoderConfig(1000, 998, 999);
        if (unet.InChannels != unet.OutChannels) throw new RecipeException($"{Source}: unet in_channels and out_channels must be equal (ε-prediction)");
        if (unet.CrossAttentionDim is { IsList: false } dim && dim.Value != text.HiddenSize)
            throw new RecipeException($"{Source}: unet cross_attention_dim ({dim.Value}) must equal text_encoder hidden_size ({text.HiddenSize})");
        InferenceSchedulerConfig();
        return this;
    }
}

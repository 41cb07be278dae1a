using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Ddpm;

/// <summary>The "model" section: which U-Net, and its config (a file beside the recipe, or inline).</summary>
public sealed record DdpmModelOptions
{
    /// <summary>"convnext" (the write-up's ConvNeXt U-Net) or "unet2d" (diffusers' UNet2DModel).</summary>
    [JsonPropertyName("type")] public string Type { get; init; } = "convnext";

    /// <summary>A config.json, relative to the recipe's folder (configs/models/…).</summary>
    [JsonPropertyName("config_file")] public string? ConfigFile { get; init; }

    /// <summary>The config inline, instead of <see cref="ConfigFile"/>.</summary>
    [JsonPropertyName("config")] public JsonObject? Config { get; init; }
}

/// <summary>The "sampling" section: how the periodic sample grids are drawn.</summary>
public sealed record DdpmSamplingOptions
{
    /// <summary>DDPM steps per sample grid (diffusers' DDPMPipeline default: 1000).</summary>
    [JsonPropertyName("inference_steps")] public int InferenceSteps { get; init; } = 1000;
}

/// <summary>
/// A pixel-space DDPM recipe (configs/train/ddpm-*.json): model, noise scheduler (diffusers'
/// DDPMScheduler config), data, sampling and the shared training options. The objective is
/// ε-prediction: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε with t uniform in [0, T), loss ‖ε − ε_θ(x_t, t)‖².
/// </summary>
public sealed record DdpmRecipe
{
    [JsonPropertyName("model")] public DdpmModelOptions Model { get; init; } = new();

    /// <summary>The DDPMScheduler config (scheduler_config.json keys); omitted keys take diffusers' defaults.</summary>
    [JsonPropertyName("noise_scheduler")] public JsonObject? NoiseScheduler { get; init; }

    [JsonPropertyName("data")] public DataOptions Data { get; init; } = new();
    [JsonPropertyName("sampling")] public DdpmSamplingOptions Sampling { get; init; } = new();
    [JsonPropertyName("training")] public TrainingOptions Training { get; init; } = new();

    /// <summary>The folder relative paths in the recipe start from (the recipe file's folder).</summary>
    [JsonIgnore] public string? BaseDirectory { get; init; }

    /// <summary>Where the recipe came from, for error messages.</summary>
    [JsonIgnore] public string Source { get; init; } = "recipe";

    public static DdpmRecipe Load(string path)
    {
        var recipe = RecipeJson.Load<DdpmRecipe>(path) with
        {
            BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(path)),
            Source = path,
        };
        return recipe.Resolve();
    }

    public static DdpmRecipe Parse(string json, string source = "recipe", string? baseDirectory = null) =>
        (RecipeJson.Parse<DdpmRecipe>(json, source) with { BaseDirectory = baseDirectory, Source = source }).Resolve();

    /// <summary>Reads a config_file into the inline config, so the recipe stands alone (it is copied into the output folder).</summary>
    private DdpmRecipe Resolve()
    {
        if (Model.ConfigFile is null) return this;
        if (Model.Config is not null) throw new RecipeException($"{Source}: 'model' has both config_file and config; give one");
        var path = Path.GetFullPath(Model.ConfigFile, BaseDirectory ?? Environment.CurrentDirectory);
        JsonObject config;
        try
        {
            config = JsonNode.Parse(Torch.BoundedFile.ReadAllText(path, Torch.BoundedFile.ConfigLimit, "JSON config")) as JsonObject ?? throw new RecipeException($"{path}: not a JSON object");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            throw new RecipeException($"{Source}: 'model.config_file' {path} cannot be read ({e.Message})", e);
        }
        return this with { Model = Model with { ConfigFile = null, Config = config } };
    }

    /// <summary>The noise scheduler's config, validated.</summary>
    public DDPMSchedulerConfig SchedulerConfig() => NoiseSchedulerSection.Parse(NoiseScheduler, Source);

    /// <summary>Checks the recipe as a whole: each section, then that data and model fit together.</summary>
    public DdpmRecipe Validate(PixelDenoiser? model = null)
    {
        Training.Validate(Source);
        Data.Validate(Source);
        if (Model.Type is not ("convnext" or "unet2d")) throw new RecipeException($"{Source}: 'model.type' must be \"convnext\" or \"unet2d\" (got \"{Model.Type}\")");
        if (Model.Config is null) throw new RecipeException($"{Source}: 'model' needs config_file or config");
        if (Sampling.InferenceSteps < 1) throw new RecipeException($"{Source}: 'sampling.inference_steps' must be positive (got {Sampling.InferenceSteps})");
        var scheduler = SchedulerConfig();
        if (Sampling.InferenceSteps > scheduler.NumTrainTimesteps)
            throw new RecipeException($"{Source}: 'sampling.inference_steps' ({Sampling.InferenceSteps}) cannot exceed noise_scheduler.num_train_timesteps ({scheduler.NumTrainTimesteps})");
        if (model is null) return this;
        if (Data.ImageSize % model.DownsamplingFactor != 0)
            throw new RecipeException($"{Source}: 'data.image_size' ({Data.ImageSize}) must be a multiple of the U-Net's total downsampling ({model.DownsamplingFactor})");
        if (Data.EffectiveChannels != model.Channels)
            throw new RecipeException($"{Source}: the data has {Data.EffectiveChannels} channel(s) but the model takes {model.Channels} ('model' in_channels/channels)");
        if (model.SampleSize != Data.ImageSize)
            throw new RecipeException($"{Source}: the model's sample_size ({model.SampleSize}) differs from 'data.image_size' ({Data.ImageSize})");
        return this;
    }
}

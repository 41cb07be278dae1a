using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Training.Data;
using FashionColoursData = LatentDiffusion.Training.Data.FashionColours;
using LatentDiffusion.Training.Ldm;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Lora;

/// <summary>The "network" section: the adapters' size and where they go.</summary>
public sealed record LoraNetworkOptions
{
    /// <summary>The rank r of every adapter (kohya's network_dim).</summary>
    [JsonPropertyName("rank")] public int Rank { get; init; } = 4;

    /// <summary>kohya's network_alpha: the update is scaled by alpha / rank (null: alpha = rank, scale 1).</summary>
    [JsonPropertyName("alpha")] public double? Alpha { get; init; }

    /// <summary>Also adapt the text encoder's attention projections (lora_te_ keys).</summary>
    [JsonPropertyName("train_text_encoder")] public bool TrainTextEncoder { get; init; }
}

/// <summary>
/// The "data" section: a kohya-convention captioned folder (<see cref="Data.KohyaFolderDataset"/>), or Fashion colours made
/// from Fashion-MNIST on the fly with a fraction of the items tinted with a new colour word (<c>fashion_colours</c>,
/// <c>new_colour</c>, <c>new_colour_fraction</c>: nothing to prepare, and the same data on every machine).
/// </summary>
public sealed record LoraDataOptions
{
    /// <summary>The image folder, relative to the recipe (images + same-name .txt; repeats via a <c>10_subject</c> sub-folder).</summary>
    [JsonPropertyName("folder")] public string? Folder { get; init; }

    /// <summary>Instead of a folder: the Fashion colours training split (options file, Fashion-MNIST folder, limit).</summary>
    [JsonPropertyName("fashion_colours")] public FashionColoursDataOptions? FashionColours { get; init; }

    /// <summary>With <see cref="FashionColours"/>: the new colour's name (one of <see cref="FashionColoursData.NewColours"/>).</summary>
    [JsonPropertyName("new_colour")] public string? NewColour { get; init; }

    /// <summary>With <see cref="FashionColours"/>: the fraction of items tinted with the new colour (the rest keep the old words).</summary>
    [JsonPropertyName("new_colour_fraction")] public double NewColourFraction { get; init; } = 0.5;

    /// <summary>Training size in pixels: images are resized and centre-cropped to this square (with buckets: the largest area, resolution²).</summary>
    [JsonPropertyName("resolution")] public int Resolution { get; init; } = 512;

    [JsonPropertyName("random_flip")] public bool RandomFlip { get; init; }

    /// <summary>kohya's enable_bucket: aspect-ratio buckets instead of the square crop (<see cref="AspectBuckets"/>).</summary>
    [JsonPropertyName("enable_bucket")] public bool EnableBucket { get; init; }

    /// <summary>kohya's min_bucket_reso: the shortest bucket side.</summary>
    [JsonPropertyName("min_bucket_reso")] public int MinBucketReso { get; init; } = 256;

    /// <summary>kohya's max_bucket_reso: the longest bucket side.</summary>
    [JsonPropertyName("max_bucket_reso")] public int MaxBucketReso { get; init; } = 1024;

    /// <summary>kohya's bucket_reso_steps: bucket sides are multiples of it.</summary>
    [JsonPropertyName("bucket_reso_steps")] public int BucketResoSteps { get; init; } = 64;

    /// <summary>kohya's bucket_no_upscale: each image's bucket is cut from its own size (shrunk to resolution² if larger, never enlarged).</summary>
    [JsonPropertyName("bucket_no_upscale")] public bool BucketNoUpscale { get; init; }

    /// <summary>The bucketing settings, or null without enable_bucket.</summary>
    [JsonIgnore] public BucketOptions? Buckets => EnableBucket ? new BucketOptions(Resolution, MinBucketReso, MaxBucketReso, BucketResoSteps, BucketNoUpscale) : null;
}

/// <summary>
/// A LoRA fine-tuning recipe (configs/train/lora-*.json): the frozen base model (any loadable Stable Diffusion folder or
/// single file), the adapters, the captioned folder, the noise schedule (default: the model's own betas, as diffusers'
/// train_text_to_image_lora.py loads DDPMScheduler from the model), sample prompts and the shared training options.
/// </summary>
public sealed record LoraRecipe
{
    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("network")] public LoraNetworkOptions Network { get; init; } = new();
    [JsonPropertyName("data")] public LoraDataOptions Data { get; init; } = new();

    /// <summary>"sample" (z ~ q(z|x)) or "mean".</summary>
    [JsonPropertyName("latents")] public string Latents { get; init; } = "sample";

    /// <summary>DDPMScheduler keys overriding the model's scheduler config (null: the model's betas).</summary>
    [JsonPropertyName("noise_scheduler")] public JsonObject? NoiseScheduler { get; init; }

    [JsonPropertyName("sampling")] public LdmSamplingOptions Sampling { get; init; } = new();
    [JsonPropertyName("training")] public TrainingOptions Training { get; init; } = new();

    [JsonIgnore] public string? BaseDirectory { get; init; }
    [JsonIgnore] public string Source { get; init; } = "recipe";

    public static LoraRecipe Load(string path) => RecipeJson.Load<LoraRecipe>(path) with
    {
        BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(path)),
        Source = path,
    };

    public static LoraRecipe Parse(string json, string source = "recipe", string? baseDirectory = null) =>
        RecipeJson.Parse<LoraRecipe>(json, source) with { BaseDirectory = baseDirectory, Source = source };

    private string Resolve(string path) => Path.GetFullPath(path, BaseDirectory ?? Environment.CurrentDirectory);

    [JsonIgnore] public string ModelPath => Resolve(Model ?? throw new RecipeException($"{Source}: 'model' is required (a Stable Diffusion folder or .safetensors file)"));
    [JsonIgnore] public string DataFolder => Resolve(Data.Folder ?? throw new RecipeException($"{Source}: 'data.folder' is required (a captioned image folder)"));

    /// <summary>The training data: the captioned folder, or Fashion colours with the new colour.</summary>
    public IDataset OpenDataset()
    {
        if (Data.FashionColours is not { } fashion) return new KohyaFolderDataset(DataFolder, Data.Resolution, Data.RandomFlip, Data.Buckets);
        return fashion.OpenTrain(BaseDirectory, Source, NewColour(), Data.NewColourFraction);
    }

    private FashionColour? NewColour()
    {
        if (Data.NewColour is not { } name) return null;
        return FashionColoursData.NewColours.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new RecipeException($"{Source}: 'data.new_colour' \"{name}\" is not one of {string.Join(", ", FashionColoursData.NewColours.Select(c => c.Name))}");
    }

    /// <summary>The training noise schedule: the model's scheduler betas with the recipe's overrides, as a DDPMScheduler.</summary>
    public DDPMSchedulerConfig NoiseSchedulerConfig(SchedulerConfig model)
    {
        var own = model.ToJson();
        var json = new JsonObject();
        foreach (var key in new[] { "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas" })
            if (own[key] is { } value) json[key] = value.DeepClone();
        json["clip_sample"] = false;
        foreach (var (key, value) in NoiseScheduler ?? []) json[key] = value?.DeepClone();
        return NoiseSchedulerSection.Parse(json, Source);
    }

    public LoraRecipe Validate()
    {
        Training.Validate(Source);
        _ = ModelPath;
        if (Data.FashionColours is { } fashion)
        {
            if (Data.Folder is not null) throw new RecipeException($"{Source}: 'data' gives both 'folder' and 'fashion_colours'; choose one");
            fashion.Validate(Source);
            _ = NewColour();
            if (!(Data.NewColourFraction >= 0 && Data.NewColourFraction <= 1)) throw new RecipeException($"{Source}: 'data.new_colour_fraction' must be in [0, 1] (got {Data.NewColourFraction})");
            if (Data.Resolution != FashionColoursData.Side) throw new RecipeException($"{Source}: 'data.resolution' must be {FashionColoursData.Side} for Fashion colours (got {Data.Resolution})");
            if (Data.EnableBucket) throw new RecipeException($"{Source}: 'data.enable_bucket' needs a 'data.folder' (Fashion colours are all square)");
        }
        else
        {
            if (Data.NewColour is not null) throw new RecipeException($"{Source}: 'data.new_colour' needs 'data.fashion_colours'");
            _ = DataFolder;
        }
        if (Network.Rank < 1) throw new RecipeException($"{Source}: 'network.rank' must be at least 1 (got {Network.Rank})");
        if (Network.Alpha is { } a && !(a > 0 && double.IsFinite(a))) throw new RecipeException($"{Source}: 'network.alpha' must be a positive number (got {a})");
        if (Data.Resolution < 8 || Data.Resolution % 8 != 0) throw new RecipeException($"{Source}: 'data.resolution' must be a positive multiple of 8 (got {Data.Resolution})");
        if (Data.Buckets?.Problem("data.") is { } bucketProblem) throw new RecipeException($"{Source}: {bucketProblem}");
        if (Latents is not ("sample" or "mean")) throw new RecipeException($"{Source}: 'latents' must be \"sample\" or \"mean\" (got \"{Latents}\")");
        if (Sampling.Steps < 1) throw new RecipeException($"{Source}: 'sampling.steps' must be positive (got {Sampling.Steps})");
        if (Sampling.Prompts is not { Length: > 0 }) throw new RecipeException($"{Source}: 'sampling.prompts' must list at least one prompt");
        return this;
    }
}

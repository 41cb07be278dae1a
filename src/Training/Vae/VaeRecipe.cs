using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Vae;

/// <summary>The "loss" section: reconstruction kind and KL weight.</summary>
public sealed record VaeLossOptions
{
    /// <summary>"l1" (LDM's autoencoders) or "l2".</summary>
    [JsonPropertyName("reconstruction")] public ReconstructionLoss Reconstruction { get; init; } = ReconstructionLoss.L1;

    /// <summary>
    /// Weight of KL(q(z|x) ‖ N(0, I)). Both terms are per image and divided by the image's element
    /// count: loss = mean |x − x̂| + kl_weight · KL / (C·H·W), which is LDM's
    /// sum-per-image form (kl_weight 1e-6) divided by C·H·W.
    /// </summary>
    [JsonPropertyName("kl_weight")] public double KlWeight { get; init; } = 1e-6;
}

/// <summary>The "evaluation" section: how many test images measure PSNR, how many training images set the scaling factor.</summary>
public sealed record VaeEvaluationOptions
{
    /// <summary>Test-split images whose reconstruction PSNR is reported at the end (the first N).</summary>
    [JsonPropertyName("test_images")] public int TestImages { get; init; } = 10_000;

    /// <summary>Test images measured with each sample grid (a quick PSNR logged to samples/psnr.jsonl).</summary>
    [JsonPropertyName("sample_test_images")] public int SampleTestImages { get; init; } = 256;

    /// <summary>Training images encoded to set scaling_factor = 1 / std(z) (LDM §4.3.2, as the SD VAE's 0.18215 was found).</summary>
    [JsonPropertyName("scaling_images")] public int ScalingImages { get; init; } = 4096;
}

/// <summary>
/// A VAE recipe (configs/train/vae-*.json): the AutoencoderKL config (its scaling_factor is replaced
/// by the measured one at export), the loss, the optional PatchGAN discriminator, the Fashion colours
/// data, evaluation sizes and the shared training options.
/// </summary>
public sealed record VaeRecipe
{
    [JsonPropertyName("model")] public JsonObject? Model { get; init; }
    [JsonPropertyName("loss")] public VaeLossOptions Loss { get; init; } = new();

    /// <summary>The adversarial term; null (absent): reconstruction and KL only.</summary>
    [JsonPropertyName("discriminator")] public VaeDiscriminatorOptions? Discriminator { get; init; }
    [JsonPropertyName("data")] public FashionColoursDataOptions Data { get; init; } = new();
    [JsonPropertyName("evaluation")] public VaeEvaluationOptions Evaluation { get; init; } = new();
    [JsonPropertyName("training")] public TrainingOptions Training { get; init; } = new();

    [JsonIgnore] public string? BaseDirectory { get; init; }
    [JsonIgnore] public string Source { get; init; } = "recipe";

    public static VaeRecipe Load(string path) => RecipeJson.Load<VaeRecipe>(path) with
    {
        BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(path)),
        Source = path,
    };

    public static VaeRecipe Parse(string json, string source = "recipe", string? baseDirectory = null) =>
        RecipeJson.Parse<VaeRecipe>(json, source) with { BaseDirectory = baseDirectory, Source = source };

    /// <summary>The model config, validated (errors name the field).</summary>
    public AutoencoderKLConfig ModelConfig()
    {
        if (Model is null) throw new RecipeException($"{Source}: 'model' (an AutoencoderKL config.json) is required");
        try
        {
            var config = ConfigJson.Parse<AutoencoderKLConfig>(RecipeJson.Text(Model), $"{Source}: model");
            config.Validate($"{Source}: model");
            return config;
        }
        catch (ConfigException e)
        {
            throw new RecipeException(e.Message, e);
        }
    }

    public VaeRecipe Validate()
    {
        Training.Validate(Source);
        Data.Validate(Source);
        if (!(Loss.KlWeight >= 0)) throw new RecipeException($"{Source}: 'loss.kl_weight' must not be negative (got {Loss.KlWeight})");
        Discriminator?.Validate(Source, FashionColours.Side);
        if (Evaluation.TestImages < 1) throw new RecipeException($"{Source}: 'evaluation.test_images' must be positive");
        if (Evaluation.SampleTestImages < 1) throw new RecipeException($"{Source}: 'evaluation.sample_test_images' must be positive");
        if (Evaluation.ScalingImages < 2) throw new RecipeException($"{Source}: 'evaluation.scaling_images' must be at least 2");
        var config = ModelConfig();
        if (config.InChannels != 3 || config.OutChannels != 3)
            throw new RecipeException($"{Source}: 'model' in_channels and out_channels must be 3 (Fashion colours is RGB)");
        if (32 % config.DownscaleFactor != 0)
            throw new RecipeException($"{Source}: 'model' block_out_channels gives a downscale factor of {config.DownscaleFactor}, which does not divide 32");
        return this;
    }
}

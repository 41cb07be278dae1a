using System.Text.Json.Serialization;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Toy;

/// <summary>
/// Recipe of the 2-D S-curve toy (configs/train/toy-s-curve.json). The defaults are the write-up's:
/// 10,000 points with noise 0.1, scaled by 1/10; 100 steps of sigmoid betas in [1e-5, 5e-3]; an MLP
/// of 128 units; Adam (AdamW without decay) at 1e-3, constant rate, gradients clipped at 1.0, batches
/// of 512, no EMA.
/// </summary>
public sealed record ToyRecipe
{
    [JsonPropertyName("points")] public int Points { get; init; } = 10_000;
    [JsonPropertyName("noise")] public double Noise { get; init; } = 0.1;
    [JsonPropertyName("scale")] public double Scale { get; init; } = 0.1;
    [JsonPropertyName("data_seed")] public ulong DataSeed { get; init; } = 0;

    [JsonPropertyName("num_steps")] public int NumSteps { get; init; } = 100;
    [JsonPropertyName("beta_min")] public double BetaMin { get; init; } = 1e-5;
    [JsonPropertyName("beta_max")] public double BetaMax { get; init; } = 5e-3;
    [JsonPropertyName("hidden_units")] public int HiddenUnits { get; init; } = 128;

    /// <summary>Points drawn for the sample scatter plots and the reverse-process frames.</summary>
    [JsonPropertyName("sample_points")] public int SamplePoints { get; init; } = 2_000;

    [JsonPropertyName("training")] public TrainingOptions Training { get; init; } = DefaultTraining;

    public static TrainingOptions DefaultTraining { get; } = new()
    {
        MaxSteps = 20_000,
        BatchSize = 512,
        LearningRate = 1e-3,
        LrSchedule = "constant",
        WarmupSteps = 0,
        AdamBeta1 = 0.9,
        AdamBeta2 = 0.999,
        WeightDecay = 0,
        MaxGradNorm = 1.0,
        Ema = null,
        CheckpointEvery = 5_000,
        SampleEvery = 5_000,
        LogEvery = 100,
    };

    public static ToyRecipe Load(string path) => RecipeJson.Load<ToyRecipe>(path).Validate(path);

    public ToyRecipe Validate(string source)
    {
        RecipeException Bad(string field, string why) => new($"{source}: '{field}' {why}");
        if (Points < 2) throw Bad("points", $"must be at least 2 (got {Points})");
        if (!(Noise >= 0)) throw Bad("noise", $"must not be negative (got {Noise})");
        if (!(Scale > 0)) throw Bad("scale", $"must be positive (got {Scale})");
        if (NumSteps < 2) throw Bad("num_steps", $"must be at least 2 (got {NumSteps})");
        if (!(BetaMin > 0)) throw Bad("beta_min", $"must be positive (got {BetaMin})");
        if (!(BetaMax > BetaMin && BetaMax < 1)) throw Bad("beta_max", $"must be in (beta_min, 1) (got {BetaMax})");
        if (HiddenUnits < 1) throw Bad("hidden_units", $"must be positive (got {HiddenUnits})");
        if (SamplePoints < 1) throw Bad("sample_points", $"must be positive (got {SamplePoints})");
        Training.Validate(source);
        if (Training.BatchSize < 2) throw Bad("training.batch_size", $"must be at least 2: timesteps are drawn in antithetic pairs (got {Training.BatchSize})");
        return this;
    }
}

using System.Text.Json.Serialization;
using LatentDiffusion.Torch.Optim;

namespace LatentDiffusion.Training.Recipes;

public enum LossKind { L2, L1 }

/// <summary>
/// The "training" section of a recipe: what the shared <see cref="Trainer"/> needs, whatever the
/// model. Defaults follow diffusers' train_unconditional.py where it has one.
/// </summary>
public sealed record TrainingOptions
{
    [JsonPropertyName("max_steps")] public long MaxSteps { get; init; } = 10_000;
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 64;
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 1e-4;

    /// <summary>constant, constant_with_warmup, linear or cosine (diffusers' names).</summary>
    [JsonPropertyName("lr_schedule")] public string LrSchedule { get; init; } = "cosine";
    [JsonPropertyName("warmup_steps")] public long WarmupSteps { get; init; } = 500;

    [JsonPropertyName("adam_beta1")] public double AdamBeta1 { get; init; } = 0.95;
    [JsonPropertyName("adam_beta2")] public double AdamBeta2 { get; init; } = 0.999;
    [JsonPropertyName("adam_epsilon")] public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>AdamW's decoupled weight decay; 0 makes it plain Adam.</summary>
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 1e-6;

    /// <summary>Clip the global gradient norm to this; null: no clipping.</summary>
    [JsonPropertyName("max_grad_norm")] public double? MaxGradNorm { get; init; } = 1.0;

    [JsonPropertyName("loss")] public LossKind Loss { get; init; } = LossKind.L2;

    /// <summary>Exponential moving average of the weights; null: none.</summary>
    [JsonPropertyName("ema")] public EmaOptions? Ema { get; init; } = new();

    /// <summary>Seeds the model's initialisation, the data order and the training noise.</summary>
    [JsonPropertyName("seed")] public ulong Seed { get; init; } = 0;

    [JsonPropertyName("shuffle")] public bool Shuffle { get; init; } = true;

    /// <summary>"cpu", "cuda" or "cuda:N": where the model trains (random draws stay on the CPU generator, so a seed gives the same run anywhere).</summary>
    [JsonPropertyName("device")] public string Device { get; init; } = "cpu";

    /// <summary>Batches prepared ahead on the loader thread.</summary>
    [JsonPropertyName("prefetch_batches")] public int PrefetchBatches { get; init; } = 4;

    /// <summary>Write a checkpoint every this many steps (and at the end, and when cancelled); 0: only then.</summary>
    [JsonPropertyName("checkpoint_every")] public long CheckpointEvery { get; init; } = 1000;

    /// <summary>How many of the newest checkpoints to keep.</summary>
    [JsonPropertyName("keep_checkpoints")] public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Write a sample grid every this many steps (and at the end); 0: only at the end.</summary>
    [JsonPropertyName("sample_every")] public long SampleEvery { get; init; } = 1000;

    /// <summary>Images in a sample grid.</summary>
    [JsonPropertyName("sample_count")] public int SampleCount { get; init; } = 16;

    /// <summary>Append a metrics line every this many steps.</summary>
    [JsonPropertyName("log_every")] public long LogEvery { get; init; } = 10;

    /// <summary>Rejects impossible values with one error naming the field.</summary>
    public TrainingOptions Validate(string source)
    {
        RecipeException Bad(string field, string why) => new($"{source}: 'training.{field}' {why}");
        if (MaxSteps <= 0) throw Bad("max_steps", $"must be positive (got {MaxSteps})");
        if (BatchSize <= 0) throw Bad("batch_size", $"must be positive (got {BatchSize})");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw Bad("learning_rate", $"must be a positive number (got {LearningRate})");
        if (LrSchedule is not ("constant" or "constant_with_warmup" or "linear" or "cosine"))
            throw Bad("lr_schedule", $"must be constant, constant_with_warmup, linear or cosine (got '{LrSchedule}')");
        if (WarmupSteps < 0) throw Bad("warmup_steps", $"must not be negative (got {WarmupSteps})");
        if (!(AdamBeta1 >= 0 && AdamBeta1 < 1)) throw Bad("adam_beta1", $"must be in [0, 1) (got {AdamBeta1})");
        if (!(AdamBeta2 >= 0 && AdamBeta2 < 1)) throw Bad("adam_beta2", $"must be in [0, 1) (got {AdamBeta2})");
        if (!(AdamEpsilon >= 0)) throw Bad("adam_epsilon", $"must not be negative (got {AdamEpsilon})");
        if (!(WeightDecay >= 0)) throw Bad("weight_decay", $"must not be negative (got {WeightDecay})");
        if (MaxGradNorm is { } clip && !(clip > 0)) throw Bad("max_grad_norm", $"must be positive, or null for no clipping (got {clip})");
        Ema?.Validate(source);
        try { Torch.Device.Parse(Device); }
        catch (ArgumentException) { throw Bad("device", $"must be cpu, cuda or cuda:N (got \"{Device}\")"); }
        if (PrefetchBatches < 1) throw Bad("prefetch_batches", $"must be at least 1 (got {PrefetchBatches})");
        if (CheckpointEvery < 0) throw Bad("checkpoint_every", $"must not be negative (got {CheckpointEvery})");
        if (KeepCheckpoints < 1) throw Bad("keep_checkpoints", $"must be at least 1 (got {KeepCheckpoints})");
        if (SampleEvery < 0) throw Bad("sample_every", $"must not be negative (got {SampleEvery})");
        if (SampleCount < 1) throw Bad("sample_count", $"must be at least 1 (got {SampleCount})");
        if (LogEvery < 1) throw Bad("log_every", $"must be at least 1 (got {LogEvery})");
        return this;
    }

    public LearningRateSchedule Schedule() => LearningRateSchedule.FromName(LrSchedule, WarmupSteps, MaxSteps);
}

/// <summary>EMA settings, diffusers' EMAModel arguments (train_unconditional.py's defaults).</summary>
public sealed record EmaOptions
{
    [JsonPropertyName("decay")] public double Decay { get; init; } = 0.9999;
    [JsonPropertyName("min_decay")] public double MinDecay { get; init; } = 0.0;
    [JsonPropertyName("update_after_step")] public long UpdateAfterStep { get; init; } = 0;
    [JsonPropertyName("use_warmup")] public bool UseWarmup { get; init; } = true;
    [JsonPropertyName("inv_gamma")] public double InvGamma { get; init; } = 1.0;
    [JsonPropertyName("power")] public double Power { get; init; } = 0.75;

    public void Validate(string source)
    {
        if (!(Decay >= 0 && Decay <= 1)) throw new RecipeException($"{source}: 'training.ema.decay' must be in [0, 1] (got {Decay})");
        if (!(MinDecay >= 0 && MinDecay <= Decay)) throw new RecipeException($"{source}: 'training.ema.min_decay' must be in [0, decay] (got {MinDecay})");
        if (UpdateAfterStep < 0) throw new RecipeException($"{source}: 'training.ema.update_after_step' must not be negative (got {UpdateAfterStep})");
        if (!(InvGamma > 0)) throw new RecipeException($"{source}: 'training.ema.inv_gamma' must be positive (got {InvGamma})");
        if (!(Power > 0)) throw new RecipeException($"{source}: 'training.ema.power' must be positive (got {Power})");
    }
}

using System.Text.Json.Serialization;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The config diffusers' consistency samplers share (LCMScheduler, and TCDScheduler, which copies it): Stable
/// Diffusion's betas, the distillation grid's length and LCM's boundary-condition scale.
/// </summary>
public abstract record ConsistencySchedulerConfig : SchedulerConfig
{
    protected ConsistencySchedulerConfig()
    {
        BetaStart = 0.00085;
        BetaEnd = 0.012;
        BetaSchedule = BetaSchedule.ScaledLinear;
    }

    /// <summary>Length of the distillation schedule the model was trained on (the skipping-step grid).</summary>
    [JsonPropertyName("original_inference_steps")] public int OriginalInferenceSteps { get; init; } = 50;
    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; }
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    [JsonPropertyName("set_alpha_to_one")] public bool SetAlphaToOne { get; init; } = true;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>Scale of t in the consistency boundary conditions c_skip(t), c_out(t) (TCD declares it and does not read it).</summary>
    [JsonPropertyName("timestep_scaling")] public double TimestepScaling { get; init; } = 10.0;
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    internal override bool RescalesBetasToZeroSnr => RescaleBetasZeroSnr;

    public override void Validate()
    {
        base.Validate();
        RequirePositive(ClipSampleRange, "clip_sample_range");
        RequirePositive(TimestepScaling, "timestep_scaling");
        ValidateThresholding(DynamicThresholdingRatio, SampleMaxValue);
        if (Thresholding) throw Unsupported("thresholding", true);
        if (OriginalInferenceSteps < 1 || OriginalInferenceSteps > NumTrainTimesteps)
            throw Invalid("original_inference_steps", $"{OriginalInferenceSteps} (must be in [1, num_train_timesteps])");
    }

    /// <summary>
    /// diffusers' LCM/TCD set_timesteps: <paramref name="steps"/> evenly spaced picks (floored indices) from the
    /// descending distillation grid k, 2k, …, (original × strength)·k, minus one (the paper's skipping step k = T // original).
    /// </summary>
    internal double[] DistillationTimesteps(int steps, int? originalOverride, double strength)
    {
        int originalSteps = originalOverride ?? OriginalInferenceSteps;
        int trainSteps = NumTrainTimesteps;
        if (originalSteps > trainSteps)
            throw new ArgumentOutOfRangeException("OriginalInferenceSteps", originalSteps, $"cannot exceed num_train_timesteps ({trainSteps})");
        if (steps > trainSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"cannot exceed num_train_timesteps ({trainSteps})");
        int k = trainSteps / originalSteps;
        var origin = Enumerable.Range(1, (int)(originalSteps * strength)).Select(i => (long)i * k - 1).ToArray();
        if (origin.Length / steps < 1)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"original_inference_steps × strength ({originalSteps} × {strength}) is smaller than the number of steps");
        if (steps > originalSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"cannot exceed original_inference_steps ({originalSteps})");
        Array.Reverse(origin);
        return ScheduleMath.Linspace(0, origin.Length, steps, endpoint: false)
            .Select(v => (double)origin[(long)Math.Floor(v)]).ToArray();
    }
}

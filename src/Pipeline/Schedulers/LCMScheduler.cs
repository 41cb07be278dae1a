using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' LCMScheduler config and defaults (Stable Diffusion's betas).</summary>
public sealed record LCMSchedulerConfig : SchedulerConfig
{
    public LCMSchedulerConfig()
    {
        BetaStart = 0.00085;
        BetaEnd = 0.012;
        BetaSchedule = BetaSchedule.ScaledLinear;
    }

    [JsonIgnore] public override string ClassName => "LCMScheduler";

    /// <summary>Length of the distillation schedule the model was trained on (the skipping-step grid).</summary>
    [JsonPropertyName("original_inference_steps")] public int OriginalInferenceSteps { get; init; } = 50;
    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; }
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    [JsonPropertyName("set_alpha_to_one")] public bool SetAlphaToOne { get; init; } = true;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>Scale of t in the consistency boundary conditions c_skip(t), c_out(t).</summary>
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
}

/// <summary>
/// Latent Consistency Models (Luo et al. 2023) multistep sampling: each step maps x_t to the
/// consistency function's estimate x̂₀ = c_skip(t) x_t + c_out(t) f(x_t) ("denoised"), then, except
/// after the last step, re-noises it to the next timestep with fresh noise.
/// </summary>
public sealed class LCMScheduler : Scheduler
{
    private const double SigmaData = 0.5;

    public LCMScheduler(LCMSchedulerConfig? config = null) : base(config ?? new LCMSchedulerConfig()) { }

    public override LCMSchedulerConfig Config => (LCMSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    private double FinalAlphaCumprod => Config.SetAlphaToOne ? 1.0 : AlphasCumprod[0];

    /// <summary>Image-to-image strength for the next <see cref="Scheduler.SetTimesteps"/> (diffusers' set_timesteps(strength=…)).</summary>
    public double Strength { get; set; } = 1.0;

    /// <summary>Overrides original_inference_steps for the next <see cref="Scheduler.SetTimesteps"/>.</summary>
    public int? OriginalInferenceSteps { get; set; }

    protected override double[] ComputeTimesteps(int steps)
    {
        int originalSteps = OriginalInferenceSteps ?? Config.OriginalInferenceSteps;
        int trainSteps = Config.NumTrainTimesteps;
        if (originalSteps > trainSteps)
            throw new ArgumentOutOfRangeException(nameof(OriginalInferenceSteps), originalSteps, $"cannot exceed num_train_timesteps ({trainSteps})");
        if (steps > trainSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"cannot exceed num_train_timesteps ({trainSteps})");
        // the distillation grid: k, 2k, …, (original × strength)·k, minus one (k = T // original)
        int k = trainSteps / originalSteps;
        var origin = Enumerable.Range(1, (int)(originalSteps * Strength)).Select(i => (long)i * k - 1).ToArray();
        int skipping = origin.Length / steps;
        if (skipping < 1)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"original_inference_steps × strength ({originalSteps} × {Strength}) is smaller than the number of steps");
        if (steps > originalSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"cannot exceed original_inference_steps ({originalSteps})");
        // n evenly spaced picks (floored indices) from the descending grid
        Array.Reverse(origin);
        return ScheduleMath.Linspace(0, origin.Length, steps, endpoint: false)
            .Select(v => (double)origin[(long)Math.Floor(v)]).ToArray();
    }

    /// <summary>c_skip = σ_d² / ((s t)² + σ_d²), c_out = s t / √((s t)² + σ_d²), s = timestep_scaling.</summary>
    private (double Skip, double Out) BoundaryConditions(double timestep)
    {
        double scaled = timestep * Config.TimestepScaling;
        return (SigmaData * SigmaData / (scaled * scaled + SigmaData * SigmaData), scaled / Math.Sqrt(scaled * scaled + SigmaData * SigmaData));
    }

    /// <summary>PredOriginalSample is LCM's "denoised", the output to decode after the last step.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        long t = TrainingIndex(timestep);
        using var scope = DisposeScope.Enter();

        long prevT = i + 1 < Timesteps.Count ? (long)Timesteps[i + 1] : t;
        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = prevT >= 0 ? AlphasCumprod[prevT] : FinalAlphaCumprod;
        double betaProdT = 1 - alphaProdT, betaProdPrev = 1 - alphaProdPrev;
        var (cSkip, cOut) = BoundaryConditions(t);

        var predOriginal = Config.PredictionType switch
        {
            PredictionType.Epsilon => (sample - Math.Sqrt(betaProdT) * modelOutput) / Math.Sqrt(alphaProdT),
            PredictionType.Sample => modelOutput.Alias(),
            _ => Math.Sqrt(alphaProdT) * sample - Math.Sqrt(betaProdT) * modelOutput,
        };
        if (Config.ClipSample) predOriginal = predOriginal.Clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        var denoised = cOut * predOriginal + cSkip * sample;
        // re-noise to the next timestep: √ᾱ_prev x̂₀ + √(1 − ᾱ_prev) z; the last step returns x̂₀
        var prev = i != NumInferenceSteps - 1
            ? Math.Sqrt(alphaProdPrev) * denoised + Math.Sqrt(betaProdPrev) * DrawNoise(noise, denoised)
            : denoised.Alias();
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(denoised));
    }

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(original, noise, timesteps);
}

using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' DDPMScheduler config and defaults.</summary>
public sealed record DDPMSchedulerConfig : SchedulerConfig
{
    [JsonIgnore] public override string ClassName => "DDPMScheduler";

    [JsonPropertyName("variance_type")] public VarianceType VarianceType { get; init; } = VarianceType.FixedSmall;
    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; } = true;
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    internal override bool RescalesBetasToZeroSnr => RescaleBetasZeroSnr;

    protected override bool SupportsBetaSchedule(BetaSchedule schedule) => true;

    public override void Validate()
    {
        base.Validate();
        RequirePositive(ClipSampleRange, "clip_sample_range");
        ValidateThresholding(DynamicThresholdingRatio, SampleMaxValue);
        if (Thresholding) throw Unsupported("thresholding", true);
        // "learned" needs the model's raw variance; diffusers' "fixed_large_log" yields √(log β) = NaN
        if (VarianceType is VarianceType.Learned or VarianceType.FixedLargeLog) throw Unsupported("variance_type", VarianceType);
    }
}

/// <summary>
/// Denoising Diffusion Probabilistic Models (Ho et al. 2020): ancestral sampling from the posterior
/// q(x_{t−1} | x_t, x̂₀), adding variance noise at every step but the last.
/// </summary>
public sealed class DDPMScheduler : Scheduler
{
    public DDPMScheduler(DDPMSchedulerConfig? config = null) : base(config ?? new DDPMSchedulerConfig()) { }

    public override DDPMSchedulerConfig Config => (DDPMSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    protected override double[] ComputeTimesteps(int steps)
    {
        if (steps > Config.NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"cannot exceed num_train_timesteps ({Config.NumTrainTimesteps})");
        var t = ScheduleMath.SpacedTimesteps(Config.TimestepSpacing, Config.NumTrainTimesteps, steps, Config.StepsOffset);
        return Config.TimestepSpacing == TimestepSpacing.Linspace ? t.Select(ScheduleMath.Round).ToArray() : t;
    }

    /// <summary>diffusers' previous_timestep: t − T // n, whatever the spacing.</summary>
    private long PreviousTimestep(long t) => t - Config.NumTrainTimesteps / NumInferenceSteps;

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        long t = TrainingIndex(timestep), prevT = PreviousTimestep(t);
        using var scope = DisposeScope.Enter();

        Tensor? predictedVariance = null;
        if (Config.VarianceType == VarianceType.LearnedRange && modelOutput.Size(1) == sample.Size(1) * 2)
        {
            var halves = modelOutput.Split(sample.Size(1), 1);
            modelOutput = halves[0];
            predictedVariance = halves[1];
        }

        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = prevT >= 0 ? AlphasCumprod[prevT] : 1.0;
        double betaProdT = 1 - alphaProdT, betaProdPrev = 1 - alphaProdPrev;
        double currentAlphaT = alphaProdT / alphaProdPrev, currentBetaT = 1 - currentAlphaT;

        // x̂₀ from the model output (eq. 15 of the DDPM paper for ε-prediction)
        var predOriginal = Config.PredictionType switch
        {
            PredictionType.Epsilon => (sample - Math.Sqrt(betaProdT) * modelOutput) / Math.Sqrt(alphaProdT),
            PredictionType.Sample => modelOutput.Alias(),
            PredictionType.VPrediction => Math.Sqrt(alphaProdT) * sample - Math.Sqrt(betaProdT) * modelOutput,
            _ => throw Unreachable(),
        };
        if (Config.ClipSample) predOriginal = predOriginal.Clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        // Posterior mean μ̃_t(x_t, x̂₀) (eq. 7): √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x̂₀ + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t
        double predOriginalCoeff = Math.Sqrt(alphaProdPrev) * currentBetaT / betaProdT;
        double currentSampleCoeff = Math.Sqrt(currentAlphaT) * betaProdPrev / betaProdT;
        var prev = predOriginalCoeff * predOriginal + currentSampleCoeff * sample;

        if (t > 0)
        {
            var z = DrawNoise(noise, modelOutput);
            // β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, clamped away from 0
            double posteriorVariance = Math.Max(betaProdPrev / betaProdT * currentBetaT, 1e-20);
            var variance = Config.VarianceType switch
            {
                VarianceType.FixedSmall => Math.Sqrt(posteriorVariance) * z,
                VarianceType.FixedSmallLog => Math.Exp(0.5 * Math.Log(posteriorVariance)) * z,
                VarianceType.FixedLarge => Math.Sqrt(currentBetaT) * z,
                // interpolate log-variance between β̃_t and β_t by the model's v ∈ [−1, 1] (Improved DDPM eq. 15)
                VarianceType.LearnedRange => LearnedRangeStd(predictedVariance, posteriorVariance, currentBetaT) * z,
                _ => throw Unreachable(),
            };
            prev = prev + variance;
        }
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }

    private static Tensor LearnedRangeStd(Tensor? predictedVariance, double posteriorVariance, double betaT)
    {
        if (predictedVariance is null)
            throw new ArgumentException("variance_type 'learned_range' needs a model output with twice the sample's channels");
        var frac = (predictedVariance + 1.0) / 2.0;
        var logVariance = frac * Math.Log(betaT) + (1.0 - frac) * Math.Log(posteriorVariance);
        return (0.5 * logVariance).Exp();
    }

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(original, noise, timesteps);

    private InvalidOperationException Unreachable() => new($"{Config.ClassName}: unexpected option");
}

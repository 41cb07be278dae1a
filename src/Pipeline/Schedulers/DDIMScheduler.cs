using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' DDIMScheduler config and defaults.</summary>
public sealed record DDIMSchedulerConfig : SchedulerConfig
{
    [JsonIgnore] public override string ClassName => "DDIMScheduler";

    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; } = true;
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>ᾱ used after the last step: 1 (true) or ᾱ_0 (false, Stable Diffusion).</summary>
    [JsonPropertyName("set_alpha_to_one")] public bool SetAlphaToOne { get; init; } = true;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    internal override bool RescalesBetasToZeroSnr => RescaleBetasZeroSnr;

    public override void Validate()
    {
        base.Validate();
        RequirePositive(ClipSampleRange, "clip_sample_range");
        ValidateThresholding(DynamicThresholdingRatio, SampleMaxValue);
        if (Thresholding) throw Unsupported("thresholding", true);
    }
}

/// <summary>
/// Denoising Diffusion Implicit Models (Song et al. 2020): the non-Markovian sampler of eq. 12,
/// deterministic for η = 0, DDPM-like noise for η = 1.
/// </summary>
public sealed class DDIMScheduler : Scheduler
{
    public DDIMScheduler(DDIMSchedulerConfig? config = null) : base(config ?? new DDIMSchedulerConfig()) { }

    public override DDIMSchedulerConfig Config => (DDIMSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    /// <summary>DDIM's step takes η of eq. 16, the weight of the stochastic part (<see cref="Scheduler.Eta"/>; 0 = deterministic DDIM).</summary>
    public override bool UsesEta => true;

    /// <summary>Recompute ε from the clipped x̂₀ (diffusers' use_clipped_model_output).</summary>
    public bool UseClippedModelOutput { get; set; }

    private double FinalAlphaCumprod => Config.SetAlphaToOne ? 1.0 : AlphasCumprod[0];

    protected override double[] ComputeTimesteps(int steps)
    {
        if (steps > Config.NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"cannot exceed num_train_timesteps ({Config.NumTrainTimesteps})");
        var t = ScheduleMath.SpacedTimesteps(Config.TimestepSpacing, Config.NumTrainTimesteps, steps, Config.StepsOffset);
        return Config.TimestepSpacing == TimestepSpacing.Linspace ? t.Select(ScheduleMath.Round).ToArray() : t;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        long t = TrainingIndex(timestep);
        long prevT = t - Config.NumTrainTimesteps / NumInferenceSteps;
        using var scope = DisposeScope.Enter();

        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = prevT >= 0 ? AlphasCumprod[prevT] : FinalAlphaCumprod;
        double betaProdT = 1 - alphaProdT;

        // x̂₀ and ε̂ from the model output ("predicted x_0" of eq. 12)
        Tensor predOriginal, predEpsilon;
        switch (Config.PredictionType)
        {
            case PredictionType.Epsilon:
                predOriginal = (sample - Math.Sqrt(betaProdT) * modelOutput) / Math.Sqrt(alphaProdT);
                predEpsilon = modelOutput;
                break;
            case PredictionType.Sample:
                predOriginal = modelOutput.Alias();
                predEpsilon = (sample - Math.Sqrt(alphaProdT) * predOriginal) / Math.Sqrt(betaProdT);
                break;
            default: // v-prediction: x̂₀ = √ᾱ x − √(1−ᾱ) v, ε̂ = √ᾱ v + √(1−ᾱ) x
                predOriginal = Math.Sqrt(alphaProdT) * sample - Math.Sqrt(betaProdT) * modelOutput;
                predEpsilon = Math.Sqrt(alphaProdT) * modelOutput + Math.Sqrt(betaProdT) * sample;
                break;
        }
        if (Config.ClipSample) predOriginal = predOriginal.Clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        // σ_t(η) = η √((1 − ᾱ_{t−1})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1})  (eq. 16)
        double variance = (1 - alphaProdPrev) / betaProdT * (1 - alphaProdT / alphaProdPrev);
        double stdDev = Eta * Math.Sqrt(variance);
        if (UseClippedModelOutput) predEpsilon = (sample - Math.Sqrt(alphaProdT) * predOriginal) / Math.Sqrt(betaProdT);

        // x_{t−1} = √ᾱ_{t−1} x̂₀ + √(1 − ᾱ_{t−1} − σ_t²) ε̂ + σ_t z  (eq. 12)
        var direction = Math.Sqrt(1 - alphaProdPrev - stdDev * stdDev) * predEpsilon;
        var prev = Math.Sqrt(alphaProdPrev) * predOriginal + direction;
        if (Eta > 0) prev = prev + stdDev * DrawNoise(noise, modelOutput);
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(original, noise, timesteps);
}

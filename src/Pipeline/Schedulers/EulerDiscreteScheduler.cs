using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' EulerDiscreteScheduler config and defaults.</summary>
public sealed record EulerDiscreteSchedulerConfig : SchedulerConfig
{
    public EulerDiscreteSchedulerConfig() => TimestepSpacing = TimestepSpacing.Linspace;

    [JsonIgnore] public override string ClassName => "EulerDiscreteScheduler";

    protected internal override bool SupportsSimpleSpacing => true;

    [JsonPropertyName("interpolation_type")] public InterpolationType InterpolationType { get; init; } = InterpolationType.Linear;
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("use_exponential_sigmas")] public bool UseExponentialSigmas { get; init; }
    [JsonPropertyName("use_beta_sigmas")] public bool UseBetaSigmas { get; init; }
    [JsonPropertyName("sigma_min")] public double? SigmaMin { get; init; }
    [JsonPropertyName("sigma_max")] public double? SigmaMax { get; init; }
    [JsonPropertyName("timestep_type")] public TimestepType TimestepType { get; init; } = TimestepType.Discrete;
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }
    [JsonPropertyName("final_sigmas_type")] public FinalSigmasType FinalSigmasType { get; init; } = FinalSigmasType.Zero;

    internal override bool RescalesBetasToZeroSnr => RescaleBetasZeroSnr;

    public override void Validate()
    {
        base.Validate();
        if (SigmaMin is { } min) RequirePositive(min, "sigma_min");
        if (SigmaMax is { } max) RequirePositive(max, "sigma_max");
        if (SigmaMin is { } low && SigmaMax is { } high && !(low < high))
            throw Invalid("sigma_min", $"{low} must be smaller than sigma_max ({high})");
        // diffusers' log_linear yields n + 2 sigmas for n steps; not reproduced
        if (InterpolationType != InterpolationType.Linear) throw Unsupported("interpolation_type", InterpolationType);
        RequireOneSigmaSpacing(UseKarrasSigmas, UseExponentialSigmas, UseBetaSigmas);
    }
}

/// <summary>
/// Euler's method on the probability-flow ODE dx/dσ = (x − x̂₀)/σ (Karras et al. 2022, algorithm 2,
/// with optional churn). With a noise source, one noise tensor is drawn per step, used only when
/// s_churn &gt; 0, exactly as diffusers draws it, so a seeded source stays in step with diffusers.
/// </summary>
public sealed class EulerDiscreteScheduler : SigmaScheduler
{
    public EulerDiscreteScheduler(EulerDiscreteSchedulerConfig? config = null) : base(config ?? new EulerDiscreteSchedulerConfig()) { }

    public override EulerDiscreteSchedulerConfig Config => (EulerDiscreteSchedulerConfig)base.Config;

    /// <summary>Churn: how much noise to add back per step (0 = deterministic).</summary>
    public double SChurn { get; set; }

    /// <summary>Churn only applies to σ in [STmin, STmax].</summary>
    public double STmin { get; set; }

    public double STmax { get; set; } = double.PositiveInfinity;

    /// <summary>Scale of the churn noise.</summary>
    public double SNoise { get; set; } = 1.0;

    private bool ContinuousTimesteps => Config.TimestepType == TimestepType.Continuous && Config.PredictionType == PredictionType.VPrediction;

    protected override double[] ComputeTimesteps(int steps)
    {
        var timesteps = FloatTimesteps(steps);
        var sigmas = InterpolatedSigmas(timesteps);
        // Karras, or (diffusers ≥ 0.31) exponential or beta spacing between the same σ_min and σ_max
        if (ScheduleMath.ConvertedSigmas(Config.UseKarrasSigmas, Config.UseExponentialSigmas, Config.UseBetaSigmas,
                Config.SigmaMin ?? sigmas[^1], Config.SigmaMax ?? sigmas[0], steps) is { } converted)
        {
            sigmas = converted;
            timesteps = sigmas.Select(s => (double)(float)ScheduleMath.SigmaToT(s, LogTrainingSigmas)).ToArray();
        }
        float last = Config.FinalSigmasType == FinalSigmasType.SigmaMin ? TrainingSigmas[0] : 0f;
        var all = sigmas.Select(s => (float)s).Append(last).ToArray();
        SetSigmas(all);
        // continuous-time v-prediction models take c_noise = ¼ log σ as their timestep
        return ContinuousTimesteps ? all[..^1].Select(s => (double)(0.25f * MathF.Log(s))).ToArray() : timesteps;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        var x = sample.To(DType.Float32);
        var (sigma, sigmaNext) = CurrentSigmas(i);

        // γ = min(s_churn/n, √2 − 1) inside [s_tmin, s_tmax]; σ̂ = σ (γ + 1)
        double gamma = STmin <= sigma && sigma <= STmax ? Math.Min(SChurn / (Sigmas.Count - 1), Math.Sqrt(2) - 1) : 0.0;
        Tensor? z = noise is not null || gamma > 0 ? DrawNoise(noise, modelOutput) : null;
        double sigmaHat = sigma * (gamma + 1);
        if (gamma > 0) x = x + z! * SNoise * Math.Sqrt(sigmaHat * sigmaHat - sigma * sigma);

        var predOriginal = Config.PredictionType switch
        {
            PredictionType.Epsilon => x - sigmaHat * modelOutput,
            // v-prediction in σ-space: x̂₀ = −σ/√(σ²+1) v + x/(σ²+1)
            PredictionType.VPrediction => modelOutput * (-sigma / Math.Sqrt(sigma * sigma + 1)) + x / (sigma * sigma + 1),
            _ => modelOutput.Alias(),
        };

        // d = (x − x̂₀)/σ̂; x_next = x + d (σ_next − σ̂)
        var derivative = (x - predOriginal) / sigmaHat;
        var prev = (x + derivative * (sigmaNext - sigmaHat)).To(modelOutput.DType);
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }
}

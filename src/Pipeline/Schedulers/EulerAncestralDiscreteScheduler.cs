using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' EulerAncestralDiscreteScheduler config and defaults.</summary>
public sealed record EulerAncestralDiscreteSchedulerConfig : SchedulerConfig
{
    public EulerAncestralDiscreteSchedulerConfig() => TimestepSpacing = TimestepSpacing.Linspace;

    [JsonIgnore] public override string ClassName => "EulerAncestralDiscreteScheduler";

    protected internal override bool SupportsSimpleSpacing => true;

    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    internal override bool RescalesBetasToZeroSnr => RescaleBetasZeroSnr;

    public override void Validate()
    {
        base.Validate();
        if (PredictionType == PredictionType.Sample) throw Unsupported("prediction_type", PredictionType);
    }
}

/// <summary>
/// Euler ancestral sampling (k-diffusion's sample_euler_ancestral): an Euler step down to σ_down,
/// then fresh noise of standard deviation σ_up, with σ_down² + σ_up² = σ_next². One noise tensor is
/// drawn per step (also the last, where σ_up = 0), as in diffusers.
/// </summary>
public sealed class EulerAncestralDiscreteScheduler : SigmaScheduler
{
    public EulerAncestralDiscreteScheduler(EulerAncestralDiscreteSchedulerConfig? config = null)
        : base(config ?? new EulerAncestralDiscreteSchedulerConfig()) { }

    public override EulerAncestralDiscreteSchedulerConfig Config => (EulerAncestralDiscreteSchedulerConfig)base.Config;

    protected override double[] ComputeTimesteps(int steps)
    {
        var timesteps = FloatTimesteps(steps);
        SetSigmas(InterpolatedSigmas(timesteps).Select(s => (float)s).Append(0f).ToArray());
        return timesteps;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        var x = sample.To(DType.Float32);
        var (sigma, sigmaTo) = CurrentSigmas(i);

        var predOriginal = Config.PredictionType == PredictionType.Epsilon
            ? x - sigma * modelOutput
            : modelOutput * (-sigma / Math.Sqrt(sigma * sigma + 1)) + x / (sigma * sigma + 1);

        // σ_up = √(σ_to² (σ_from² − σ_to²) / σ_from²), σ_down = √(σ_to² − σ_up²)
        double sigmaUp = Math.Sqrt(sigmaTo * sigmaTo * (sigma * sigma - sigmaTo * sigmaTo) / (sigma * sigma));
        double sigmaDown = Math.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);

        var derivative = (x - predOriginal) / sigma;
        var prev = x + derivative * (sigmaDown - sigma);
        prev = prev + DrawNoise(noise, modelOutput) * sigmaUp;
        prev = prev.To(modelOutput.DType);
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }
}

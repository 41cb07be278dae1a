using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' HeunDiscreteScheduler config and defaults (0.30.3: Stable Diffusion's beta range, linear schedule).</summary>
public sealed record HeunDiscreteSchedulerConfig : SecondOrderSchedulerConfig
{
    [JsonIgnore] public override string ClassName => "HeunDiscreteScheduler";

    [JsonPropertyName("clip_sample")] public bool ClipSample { get; init; }
    [JsonPropertyName("clip_sample_range")] public double ClipSampleRange { get; init; } = 1.0;

    public override void Validate()
    {
        base.Validate();
        RequirePositive(ClipSampleRange, "clip_sample_range");
    }
}

/// <summary>
/// Heun's method on the probability-flow ODE dx/dσ = (x − x̂₀)/σ (Karras et al. 2022, algorithm 1): an Euler
/// predictor from σ_i to σ_{i+1}, then, with the model evaluated there, the corrector that averages both slopes.
/// Each interval takes two <see cref="Step"/> calls, so <see cref="Scheduler.Timesteps"/> lists every timestep
/// after the first twice; the last interval (down to σ = 0) is a plain Euler step, as in diffusers.
/// </summary>
public sealed class HeunDiscreteScheduler : SigmaScheduler
{
    // The predictor's state for the corrector (diffusers' prev_derivative, dt, sample); null: the next call is a predictor.
    private Tensor? predictorDerivative;
    private Tensor? predictorSample;
    private float predictorDt;

    public HeunDiscreteScheduler(HeunDiscreteSchedulerConfig? config = null) : base(config ?? new HeunDiscreteSchedulerConfig()) { }

    public override HeunDiscreteSchedulerConfig Config => (HeunDiscreteSchedulerConfig)base.Config;

    public override int Order => 2;

    /// <summary>Karras timesteps come from NumPy as float64 in diffusers; the spaced ones are float32.</summary>
    public override DType TimestepDType => Config.UseKarrasSigmas ? DType.Float64 : DType.Float32;

    /// <summary>Whether the next <see cref="Step"/> is a predictor (diffusers' state_in_first_order: dt is None).</summary>
    public bool StateInFirstOrder => predictorDerivative is null;

    protected override double[] ComputeTimesteps(int steps)
    {
        var (timesteps, sigmas) = SpacedOrKarrasSigmas(steps, Config.UseKarrasSigmas);
        // σ_0, then σ_1 … σ_{n−1} twice (predictor's target, corrector's point), then 0
        SetSigmas(SecondOrderSchedule.RepeatInterior(sigmas.Select(s => (float)s).Append(0f).ToArray()));
        return SecondOrderSchedule.RepeatAfterFirst(timesteps);
    }

    protected override void ResetHistory()
    {
        predictorDerivative?.Dispose();
        predictorSample?.Dispose();
        predictorDerivative = predictorSample = null;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        bool predictor = StateInFirstOrder;
        // the corrector's index points at σ_{i+1}: its interval starts one entry back
        float sigma = predictor ? Sigmas[i] : Sigmas[i - 1];
        float sigmaNext = predictor ? Sigmas[i + 1] : Sigmas[i];
        float sigmaHat = sigma; // γ = 0: diffusers supports no churn here

        // x̂₀ at the point the model saw: σ̂ for the predictor, σ_next for the corrector
        float sigmaInput = predictor ? sigmaHat : sigmaNext;
        var predOriginal = Config.PredictionType switch
        {
            PredictionType.Epsilon => sample - sigmaInput * modelOutput,
            PredictionType.VPrediction => modelOutput * (-sigmaInput / MathF.Sqrt(sigmaInput * sigmaInput + 1)) + sample / (sigmaInput * sigmaInput + 1),
            _ => modelOutput.Alias(),
        };
        if (Config.ClipSample) predOriginal = predOriginal.Clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        Tensor prev;
        if (predictor)
        {
            // Euler: d = (x − x̂₀)/σ̂, x' = x + d (σ_next − σ̂); kept for the corrector
            var derivative = (sample - predOriginal) / sigmaHat;
            predictorDt = sigmaNext - sigmaHat;
            predictorDerivative = derivative.Alias().DetachFromDisposeScope();
            predictorSample = sample.Alias().DetachFromDisposeScope();
            prev = sample + derivative * predictorDt;
        }
        else
        {
            // Heun: the mean of the predictor's slope and the slope at σ_next, applied from the predictor's start
            var derivative = (predictorDerivative! + (sample - predOriginal) / sigmaNext) / 2;
            prev = predictorSample! + derivative * predictorDt;
            ResetHistory();
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }
}

using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' KDPM2DiscreteScheduler config and defaults (0.30.3: Stable Diffusion's beta range, linear schedule).</summary>
public sealed record KDPM2DiscreteSchedulerConfig : SchedulerConfig
{
    public KDPM2DiscreteSchedulerConfig()
    {
        BetaStart = 0.00085;
        BetaEnd = 0.012;
        TimestepSpacing = TimestepSpacing.Linspace;
    }

    [JsonIgnore] public override string ClassName => "KDPM2DiscreteScheduler";

    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }

    public override void Validate()
    {
        base.Validate();
        // diffusers' step raises NotImplementedError for sample prediction
        if (PredictionType == PredictionType.Sample) throw Unsupported("prediction_type", PredictionType);
    }
}

/// <summary>
/// k-diffusion's sample_dpm_2 (DPM-Solver-2, Karras et al. 2022): an Euler step from σ_i to the log-midpoint
/// σ_mid = √(σ_i σ_{i+1}), the model evaluated there, and a step over the whole interval with the midpoint's slope.
/// Each interval takes two <see cref="Step"/> calls; <see cref="Scheduler.Timesteps"/> interleaves the midpoints'
/// timesteps; the last interval (down to σ = 0) is a plain Euler step, as in diffusers.
/// </summary>
public sealed class KDPM2DiscreteScheduler : SigmaScheduler
{
    private float[] sigmasInterpol = [];
    private Tensor? predictorSample; // diffusers' self.sample: set between the two calls of an interval

    public KDPM2DiscreteScheduler(KDPM2DiscreteSchedulerConfig? config = null) : base(config ?? new KDPM2DiscreteSchedulerConfig()) { }

    public override KDPM2DiscreteSchedulerConfig Config => (KDPM2DiscreteSchedulerConfig)base.Config;

    public override int Order => 2;

    /// <summary>Karras timesteps come from NumPy as float64 in diffusers (and the midpoints are cast to them); the spaced ones are float32.</summary>
    public override DType TimestepDType => Config.UseKarrasSigmas ? DType.Float64 : DType.Float32;

    /// <summary>The log-midpoint sigmas, laid out as <see cref="SigmaScheduler.Sigmas"/> (diffusers' sigmas_interpol).</summary>
    public IReadOnlyList<float> SigmasInterpol => sigmasInterpol;

    /// <summary>Whether the next <see cref="Step"/> is the first half of an interval (diffusers' state_in_first_order).</summary>
    public bool StateInFirstOrder => predictorSample is null;

    protected override double[] ComputeTimesteps(int steps)
    {
        var timesteps = FloatTimesteps(steps);
        var interpolated = InterpolatedSigmas(timesteps);
        if (Config.UseKarrasSigmas)
        {
            interpolated = ScheduleMath.KarrasSigmas(interpolated[^1], interpolated[0], steps);
            // KDPM2 rounds the Karras timesteps (NumPy's round: half to even)
            timesteps = interpolated.Select(s => ScheduleMath.Round(ScheduleMath.SigmaToT(s, LogTrainingSigmas))).ToArray();
        }
        var sigmas = interpolated.Select(s => (float)s).Append(0f).ToArray();

        // σ_mid,k = exp(lerp(log σ_k, log σ_{k−1}, ½)) (roll(1): index 0 pairs σ_0 with the final 0 and is NaN, never read)
        var midpoints = new float[sigmas.Length];
        for (int k = 0; k < sigmas.Length; k++) midpoints[k] = SecondOrderSchedule.LogMidpoint(sigmas[k], sigmas[(k - 1 + sigmas.Length) % sigmas.Length]);

        SetSigmas(SecondOrderSchedule.RepeatAfterFirstThenLast(sigmas));
        sigmasInterpol = SecondOrderSchedule.RepeatAfterFirstThenLast(midpoints);

        // the midpoints' timesteps, computed on float32 tensors, cast to the timesteps' dtype; σ_mid,1 … σ_mid,n−1 are used
        var midpointTimesteps = midpoints.Select(s => (double)SecondOrderSchedule.SigmaToTFloat32(s, LogTrainingSigmas)).ToArray();
        return SecondOrderSchedule.InterleaveMidpoints(timesteps, midpointTimesteps[1..^1]);
    }

    protected override void ResetHistory()
    {
        predictorSample?.Dispose();
        predictorSample = null;
    }

    /// <summary>c_in = 1/√(σ² + 1) at the point the model is evaluated: σ_i for the first call of an interval, σ_mid for the second.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        int i = EnsureStepIndex(timestep);
        double sigma = StateInFirstOrder ? Sigmas[i] : sigmasInterpol[i];
        return sample / Math.Sqrt(sigma * sigma + 1);
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        bool firstHalf = StateInFirstOrder;
        // the second call's index already points at the interval's end: its σ_i is one entry back
        float sigma = firstHalf ? Sigmas[i] : Sigmas[i - 1];
        float sigmaMid = firstHalf ? sigmasInterpol[i + 1] : sigmasInterpol[i];
        float sigmaNext = firstHalf ? Sigmas[i + 1] : Sigmas[i];
        float sigmaHat = sigma; // γ = 0: diffusers supports no churn here

        // x̂₀ at the point the model saw: σ̂ for the first call, σ_mid for the second
        float sigmaInput = firstHalf ? sigmaHat : sigmaMid;
        var predOriginal = Config.PredictionType == PredictionType.Epsilon
            ? sample - sigmaInput * modelOutput
            : modelOutput * (-sigmaInput / MathF.Sqrt(sigmaInput * sigmaInput + 1)) + sample / (sigmaInput * sigmaInput + 1);

        Tensor prev;
        if (firstHalf)
        {
            // Euler to the midpoint: x_mid = x + (x − x̂₀)/σ̂ · (σ_mid − σ̂)
            prev = sample + (sample - predOriginal) / sigmaHat * (sigmaMid - sigmaHat);
            predictorSample = sample.Alias().DetachFromDisposeScope();
        }
        else
        {
            // DPM-Solver-2: the midpoint's slope over the whole interval, from the interval's start
            prev = predictorSample! + (sample - predOriginal) / sigmaMid * (sigmaNext - sigmaHat);
            ResetHistory();
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }
}

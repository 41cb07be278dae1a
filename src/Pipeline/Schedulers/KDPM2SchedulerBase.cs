using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The config diffusers' KDPM2 schedulers share (KDPM2DiscreteScheduler, and KDPM2AncestralDiscreteScheduler, which copies
/// it; our DPM++ 2S a takes the same): Heun's (<see cref="SecondOrderSchedulerConfig"/>), with x̂₀ from an ε or v prediction only.
/// </summary>
public abstract record KDPM2FamilySchedulerConfig : SecondOrderSchedulerConfig
{
    public override void Validate()
    {
        base.Validate();
        // diffusers' step raises NotImplementedError for sample prediction
        if (PredictionType == PredictionType.Sample) throw Unsupported("prediction_type", PredictionType);
    }
}

/// <summary>
/// What k-diffusion's DPM-Solver-2 samplers (sample_dpm_2 and sample_dpm_2_ancestral, diffusers' KDPM2 and KDPM2 ancestral)
/// share: two <see cref="Scheduler.Step"/> calls per σ interval, the first an Euler step from σ_i to a log-midpoint σ_mid,
/// the second a step over the interval from its start with the slope the model gave at σ_mid; the midpoints' table
/// (diffusers' sigmas_interpol) and the interval's start kept between the calls (diffusers' self.sample). The float32
/// arithmetic is diffusers' (its sigmas are float32 tensors).
/// </summary>
public abstract class KDPM2SchedulerBase : SigmaScheduler
{
    private float[] sigmasInterpol = [];
    private Tensor? predictorSample; // diffusers' self.sample: set between the two calls of an interval

    protected KDPM2SchedulerBase(KDPM2FamilySchedulerConfig config) : base(config) { }

    public override KDPM2FamilySchedulerConfig Config => (KDPM2FamilySchedulerConfig)base.Config;

    public override int Order => 2;

    /// <summary>Karras timesteps come from NumPy as float64 in diffusers (and the midpoints are cast to them); the spaced ones are float32.</summary>
    public override DType TimestepDType => Config.UseKarrasSigmas ? DType.Float64 : DType.Float32;

    /// <summary>The log-midpoint sigmas, laid out as <see cref="SigmaScheduler.Sigmas"/> (diffusers' sigmas_interpol).</summary>
    public IReadOnlyList<float> SigmasInterpol => sigmasInterpol;

    /// <summary>Whether the next <see cref="Scheduler.Step"/> is the first half of an interval (diffusers' state_in_first_order).</summary>
    public bool StateInFirstOrder => predictorSample is null;

    /// <summary>
    /// The interval ends σ_0 … σ_{n−1} and a final 0 (float32), from the spacing's timesteps or, with use_karras_sigmas, Karras
    /// σ between the schedule's extremes, whose timesteps KDPM2 rounds (NumPy's round: half to even).
    /// </summary>
    protected (double[] Timesteps, float[] Sigmas) IntervalSigmas(int steps)
    {
        var (timesteps, sigmas) = SpacedOrKarrasSigmas(steps, Config.UseKarrasSigmas, roundKarrasTimesteps: true);
        return (timesteps, sigmas.Select(s => (float)s).Append(0f).ToArray());
    }

    /// <summary>
    /// Lays out the interval ends and the midpoints per step index (<see cref="SecondOrderSchedule.RepeatAfterFirstThenLast"/>) and
    /// returns the timesteps with the midpoints' (float32 σ → t, cast to the timesteps' dtype) interleaved.
    /// </summary>
    protected double[] SetIntervalSigmas(double[] timesteps, float[] sigmas, float[] midpoints, Range usedMidpoints)
    {
        SetSigmas(SecondOrderSchedule.RepeatAfterFirstThenLast(sigmas));
        sigmasInterpol = SecondOrderSchedule.RepeatAfterFirstThenLast(midpoints);
        var midpointTimesteps = midpoints.Select(s => (double)SecondOrderSchedule.SigmaToTFloat32(s, LogTrainingSigmas)).ToArray();
        return SecondOrderSchedule.InterleaveMidpoints(timesteps, midpointTimesteps[usedMidpoints]);
    }

    protected override void ResetHistory()
    {
        predictorSample?.Dispose();
        predictorSample = null;
    }

    /// <summary>x̂₀ at the σ the model saw: x − σ ε (ε prediction) or −σ/√(σ² + 1) v + x/(σ² + 1) (v prediction).</summary>
    protected Tensor Denoised(Tensor modelOutput, Tensor sample, float sigma) =>
        Config.PredictionType == PredictionType.Epsilon
            ? sample - sigma * modelOutput
            : modelOutput * (-sigma / MathF.Sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1);

    /// <summary>The first call: Euler to the midpoint, x_mid = x + (x − x̂₀)/σ̂ · (σ_mid − σ̂); keeps x as the interval's start.</summary>
    protected Tensor EulerToMidpoint(Tensor sample, Tensor denoised, float sigmaHat, float sigmaMid)
    {
        var prev = sample + (sample - denoised) / sigmaHat * (sigmaMid - sigmaHat);
        predictorSample = sample.Alias().DetachFromDisposeScope();
        return prev;
    }

    /// <summary>
    /// The second call: DPM-Solver-2, the slope at the midpoint (x_mid − x̂₀)/σ_mid applied from the interval's start σ̂ to
    /// <paramref name="sigmaTo"/>; ends the interval.
    /// </summary>
    protected Tensor MidpointSlopeFromStart(Tensor sample, Tensor denoised, float sigmaHat, float sigmaMid, float sigmaTo)
    {
        var prev = predictorSample! + (sample - denoised) / sigmaMid * (sigmaTo - sigmaHat);
        ResetHistory();
        return prev;
    }
}

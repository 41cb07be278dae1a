using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' KDPM2AncestralDiscreteScheduler config and defaults (0.30.3: Stable Diffusion's beta range, linear schedule).</summary>
public sealed record KDPM2AncestralDiscreteSchedulerConfig : SchedulerConfig
{
    public KDPM2AncestralDiscreteSchedulerConfig()
    {
        BetaStart = 0.00085;
        BetaEnd = 0.012;
        TimestepSpacing = TimestepSpacing.Linspace;
    }

    [JsonIgnore] public override string ClassName => "KDPM2AncestralDiscreteScheduler";

    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }

    public override void Validate()
    {
        base.Validate();
        // diffusers' step raises NotImplementedError for sample prediction
        if (PredictionType == PredictionType.Sample) throw Unsupported("prediction_type", PredictionType);
    }
}

/// <summary>
/// k-diffusion's sample_dpm_2_ancestral: each interval σ_i → σ_{i+1} is split, as Euler ancestral splits it, into a
/// deterministic part down to σ_down and fresh noise of σ_up (σ_down² + σ_up² = σ_{i+1}²); DPM-Solver-2 covers the
/// deterministic part through the log-midpoint √(σ_i σ_down). Each interval takes two <see cref="Step"/> calls. Every
/// call draws one noise tensor, as diffusers does, but only the second call of an interval adds it.
/// </summary>
public sealed class KDPM2AncestralDiscreteScheduler : SigmaScheduler
{
    private float[] sigmasInterpol = [], sigmasUp = [], sigmasDown = [];
    private Tensor? predictorSample; // diffusers' self.sample: set between the two calls of an interval

    public KDPM2AncestralDiscreteScheduler(KDPM2AncestralDiscreteSchedulerConfig? config = null)
        : base(config ?? new KDPM2AncestralDiscreteSchedulerConfig()) { }

    public override KDPM2AncestralDiscreteSchedulerConfig Config => (KDPM2AncestralDiscreteSchedulerConfig)base.Config;

    public override int Order => 2;

    /// <summary>Karras timesteps come from NumPy as float64 in diffusers (and the midpoints are cast to them); the spaced ones are float32.</summary>
    public override DType TimestepDType => Config.UseKarrasSigmas ? DType.Float64 : DType.Float32;

    /// <summary>The log-midpoint sigmas √(σ_i σ_down,i), laid out as <see cref="SigmaScheduler.Sigmas"/> (diffusers' sigmas_interpol).</summary>
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
        int n = sigmas.Length;

        // float32 like diffusers' tensors: σ_next = roll(−1) with a final 0; σ_up = √(σ_next² (σ² − σ_next²)/σ²) (NaN at the
        // final σ = 0, never read); σ_down = √(σ_next² − σ_up²), the final one set to 0
        var up = new float[n];
        var down = new float[n];
        var midpoints = new float[n];
        for (int k = 0; k < n; k++)
        {
            float s = sigmas[k], next = k + 1 < n ? sigmas[k + 1] : 0f;
            up[k] = MathF.Sqrt(next * next * (s * s - next * next) / (s * s));
            down[k] = k == n - 1 ? 0f : MathF.Sqrt(next * next - up[k] * up[k]);
        }
        // σ_mid = exp(lerp(log σ, log σ_down, ½)); diffusers zeroes the last two (σ_down = 0 there)
        for (int k = 0; k < n; k++) midpoints[k] = k >= n - 2 ? 0f : SecondOrderSchedule.LogMidpoint(sigmas[k], down[k]);

        SetSigmas(SecondOrderSchedule.RepeatAfterFirstThenLast(sigmas));
        sigmasInterpol = SecondOrderSchedule.RepeatAfterFirstThenLast(midpoints);
        sigmasUp = SecondOrderSchedule.RepeatAfterFirstThenLast(up);
        sigmasDown = SecondOrderSchedule.RepeatAfterFirstThenLast(down);

        // the midpoints' timesteps (float32 tensors, cast to the timesteps' dtype); σ_mid,0 … σ_mid,n−2 are used
        var midpointTimesteps = midpoints.Select(s => (double)SecondOrderSchedule.SigmaToTFloat32(s, LogTrainingSigmas)).ToArray();
        return SecondOrderSchedule.InterleaveMidpoints(timesteps, midpointTimesteps[..^2]);
    }

    protected override void ResetHistory()
    {
        predictorSample?.Dispose();
        predictorSample = null;
    }

    /// <summary>c_in = 1/√(σ² + 1) at the point the model is evaluated: σ_i for the first call, σ_mid for the second.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        int i = EnsureStepIndex(timestep);
        // unlike KDPM2, the ancestral tables are read one entry back in the second call
        double sigma = StateInFirstOrder ? Sigmas[i] : sigmasInterpol[i - 1];
        return sample / Math.Sqrt(sigma * sigma + 1);
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        bool firstHalf = StateInFirstOrder;
        // the first call reads entry i, the second entry i − 1 (the interval's start)
        int at = firstHalf ? i : i - 1;
        float sigma = Sigmas[at], sigmaMid = sigmasInterpol[at];
        float sigmaHat = sigma; // γ = 0: diffusers supports no churn here

        // diffusers draws noise in every call (randn_tensor before the branch), used only by the second
        var z = DrawNoise(noise, modelOutput);

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
            // DPM-Solver-2 down to σ_down from the interval's start, then the ancestral noise σ_up z
            prev = predictorSample! + (sample - predOriginal) / sigmaMid * (sigmasDown[at] - sigmaHat);
            prev = prev + z * sigmasUp[at];
            ResetHistory();
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }
}

using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' KDPM2AncestralDiscreteScheduler config and defaults (0.30.3: Stable Diffusion's beta range, linear schedule).</summary>
public sealed record KDPM2AncestralDiscreteSchedulerConfig : KDPM2FamilySchedulerConfig
{
    [JsonIgnore] public override string ClassName => "KDPM2AncestralDiscreteScheduler";
}

/// <summary>
/// k-diffusion's sample_dpm_2_ancestral: each interval σ_i → σ_{i+1} is split, as Euler ancestral splits it, into a
/// deterministic part down to σ_down and fresh noise of σ_up (σ_down² + σ_up² = σ_{i+1}²); DPM-Solver-2 covers the
/// deterministic part through the log-midpoint √(σ_i σ_down). Each interval takes two <see cref="Step"/> calls. Every
/// call draws one noise tensor, as diffusers does, but only the second call of an interval adds it.
/// </summary>
public sealed class KDPM2AncestralDiscreteScheduler : KDPM2SchedulerBase
{
    private float[] sigmasUp = [], sigmasDown = [];

    public KDPM2AncestralDiscreteScheduler(KDPM2AncestralDiscreteSchedulerConfig? config = null)
        : base(config ?? new KDPM2AncestralDiscreteSchedulerConfig()) { }

    public override KDPM2AncestralDiscreteSchedulerConfig Config => (KDPM2AncestralDiscreteSchedulerConfig)base.Config;

    protected override double[] ComputeTimesteps(int steps)
    {
        var (timesteps, sigmas) = IntervalSigmas(steps);
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

        sigmasUp = SecondOrderSchedule.RepeatAfterFirstThenLast(up);
        sigmasDown = SecondOrderSchedule.RepeatAfterFirstThenLast(down);
        // σ_mid,0 … σ_mid,n−2 are the model's midpoint timesteps
        return SetIntervalSigmas(timesteps, sigmas, midpoints, ..^2);
    }

    /// <summary>c_in = 1/√(σ² + 1) at the point the model is evaluated: σ_i for the first call, σ_mid for the second.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        int i = EnsureStepIndex(timestep);
        // unlike KDPM2, the ancestral tables are read one entry back in the second call
        double sigma = StateInFirstOrder ? Sigmas[i] : SigmasInterpol[i - 1];
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
        float sigma = Sigmas[at], sigmaMid = SigmasInterpol[at];
        float sigmaHat = sigma; // γ = 0: diffusers supports no churn here

        // diffusers draws noise in every call (randn_tensor before the branch), used only by the second
        var z = DrawNoise(noise, modelOutput);

        // x̂₀ at the point the model saw: σ̂ for the first call, σ_mid for the second
        var predOriginal = Denoised(modelOutput, sample, firstHalf ? sigmaHat : sigmaMid);
        // the second call: DPM-Solver-2 down to σ_down from the interval's start, then the ancestral noise σ_up z
        var prev = firstHalf
            ? EulerToMidpoint(sample, predOriginal, sigmaHat, sigmaMid)
            : MidpointSlopeFromStart(sample, predOriginal, sigmaHat, sigmaMid, sigmasDown[at]) + z * sigmasUp[at];
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }
}

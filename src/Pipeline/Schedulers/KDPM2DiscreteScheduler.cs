using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' KDPM2DiscreteScheduler config and defaults (0.30.3: Stable Diffusion's beta range, linear schedule).</summary>
public sealed record KDPM2DiscreteSchedulerConfig : KDPM2FamilySchedulerConfig
{
    [JsonIgnore] public override string ClassName => "KDPM2DiscreteScheduler";
}

/// <summary>
/// k-diffusion's sample_dpm_2 (DPM-Solver-2, Karras et al. 2022): an Euler step from σ_i to the log-midpoint
/// σ_mid = √(σ_i σ_{i+1}), the model evaluated there, and a step over the whole interval with the midpoint's slope.
/// Each interval takes two <see cref="Step"/> calls; <see cref="Scheduler.Timesteps"/> interleaves the midpoints'
/// timesteps; the last interval (down to σ = 0) is a plain Euler step, as in diffusers.
/// </summary>
public sealed class KDPM2DiscreteScheduler : KDPM2SchedulerBase
{
    public KDPM2DiscreteScheduler(KDPM2DiscreteSchedulerConfig? config = null) : base(config ?? new KDPM2DiscreteSchedulerConfig()) { }

    public override KDPM2DiscreteSchedulerConfig Config => (KDPM2DiscreteSchedulerConfig)base.Config;

    protected override double[] ComputeTimesteps(int steps)
    {
        var (timesteps, sigmas) = IntervalSigmas(steps);
        // σ_mid,k = exp(lerp(log σ_k, log σ_{k−1}, ½)) (roll(1): index 0 pairs σ_0 with the final 0 and is NaN, never read)
        var midpoints = new float[sigmas.Length];
        for (int k = 0; k < sigmas.Length; k++) midpoints[k] = SecondOrderSchedule.LogMidpoint(sigmas[k], sigmas[(k - 1 + sigmas.Length) % sigmas.Length]);
        // σ_mid,1 … σ_mid,n−1 are the model's midpoint timesteps
        return SetIntervalSigmas(timesteps, sigmas, midpoints, 1..^1);
    }

    /// <summary>c_in = 1/√(σ² + 1) at the point the model is evaluated: σ_i for the first call of an interval, σ_mid for the second.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        int i = EnsureStepIndex(timestep);
        double sigma = StateInFirstOrder ? Sigmas[i] : SigmasInterpol[i];
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
        float sigmaMid = firstHalf ? SigmasInterpol[i + 1] : SigmasInterpol[i];
        float sigmaNext = firstHalf ? Sigmas[i + 1] : Sigmas[i];
        float sigmaHat = sigma; // γ = 0: diffusers supports no churn here

        // x̂₀ at the point the model saw: σ̂ for the first call, σ_mid for the second
        var predOriginal = Denoised(modelOutput, sample, firstHalf ? sigmaHat : sigmaMid);
        // the second call: DPM-Solver-2 over the whole interval
        var prev = firstHalf
            ? EulerToMidpoint(sample, predOriginal, sigmaHat, sigmaMid)
            : MidpointSlopeFromStart(sample, predOriginal, sigmaHat, sigmaMid, sigmaNext);
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }
}

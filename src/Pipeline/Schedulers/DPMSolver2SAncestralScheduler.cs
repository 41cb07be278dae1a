using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The config of <see cref="DPMSolver2SAncestralScheduler"/> (our own class: diffusers has none for "DPM++ 2S a"); its fields
/// and defaults are those of diffusers' k-diffusion-style σ schedulers (KDPM2 ancestral: Stable Diffusion's beta range,
/// linspace spacing).
/// </summary>
public sealed record DPMSolver2SAncestralSchedulerConfig : KDPM2FamilySchedulerConfig
{
    [JsonIgnore] public override string ClassName => "DPMSolver2SAncestralScheduler";
}

/// <summary>
/// k-diffusion's sample_dpmpp_2s_ancestral (AUTOMATIC1111's "DPM++ 2S a"): each interval σ_i → σ_{i+1} is split, as Euler
/// ancestral splits it, into a deterministic part down to σ_down and fresh noise of σ_up (get_ancestral_step, η = 1);
/// DPM-Solver++(2S) covers the deterministic part in t = −log σ with h = t_down − t_i, through the midpoint s = t_i + h/2
/// (σ(s) = √(σ_i σ_down)). Each interval takes two <see cref="Step"/> calls, laid out as diffusers' KDPM2 ancestral lays
/// them out (order 2, the midpoint timesteps interleaved); the last interval, down to σ = 0, is one Euler call.
/// <para>
/// Noise: one draw per interval with σ_{i+1} &gt; 0, in its second call, as k-diffusion calls its noise sampler once per
/// step (randn_like by default); the last step draws none.
/// </para>
/// </summary>
public sealed class DPMSolver2SAncestralScheduler : SigmaScheduler
{
    // k-diffusion's sigmas σ_0 … σ_n = 0, and per interval i (σ_i → σ_{i+1}): get_ancestral_step's σ_down and σ_up, and the
    // midpoint σ(s) = exp(−(t + h/2))
    private double[] stepSigmas = [], sigmasDown = [], sigmasUp = [], sigmasMid = [];
    private Tensor? intervalStart; // x at σ_i, kept between the two calls of an interval

    public DPMSolver2SAncestralScheduler(DPMSolver2SAncestralSchedulerConfig? config = null)
        : base(config ?? new DPMSolver2SAncestralSchedulerConfig()) { }

    public override DPMSolver2SAncestralSchedulerConfig Config => (DPMSolver2SAncestralSchedulerConfig)base.Config;

    public override int Order => 2;

    /// <summary>Karras timesteps are float64 (σ → t in float64, as KDPM2 ancestral's); the spaced ones are float32.</summary>
    public override DType TimestepDType => Config.UseKarrasSigmas ? DType.Float64 : DType.Float32;

    /// <summary>The midpoint sigmas σ(s) = √(σ_i σ_down,i), one per interval (0 for the last, which has none).</summary>
    public IReadOnlyList<double> SigmasMid => sigmasMid;

    /// <summary>Whether the next <see cref="Step"/> is the first call of an interval.</summary>
    public bool StateInFirstOrder => intervalStart is null;

    protected override double[] ComputeTimesteps(int steps)
    {
        // with Karras σ: k-diffusion's get_sigmas_karras (ρ = 7) between the schedule's extremes; the model's timesteps stay fractional
        var (timesteps, sigmas) = SpacedOrKarrasSigmas(steps, Config.UseKarrasSigmas);
        var schedule = sigmas.Select(s => (float)s).Append(0f).ToArray();
        stepSigmas = schedule.Select(s => (double)s).ToArray();

        sigmasDown = new double[steps];
        sigmasUp = new double[steps];
        sigmasMid = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            (sigmasDown[i], sigmasUp[i]) = AncestralStep(schedule[i], schedule[i + 1]);
            sigmasMid[i] = sigmasDown[i] == 0 ? 0 : MidpointSigma(schedule[i], sigmasDown[i]);
        }
        SetSigmas(SecondOrderSchedule.RepeatAfterFirstThenLast(schedule));

        // the model's timestep at σ(s): the float32 σ → t interpolation KDPM2 uses for its midpoints; the last interval has none
        var midpointTimesteps = sigmasMid[..^1].Select(s => (double)SecondOrderSchedule.SigmaToTFloat32((float)s, LogTrainingSigmas)).ToArray();
        return SecondOrderSchedule.InterleaveMidpoints(timesteps, midpointTimesteps);
    }

    /// <summary>
    /// k-diffusion's get_ancestral_step with η = 1: σ_up = min(σ_to, √(σ_to² (σ_from² − σ_to²)/σ_from²)),
    /// σ_down = √(σ_to² − σ_up²).
    /// </summary>
    private static (double Down, double Up) AncestralStep(double sigmaFrom, double sigmaTo)
    {
        double up = Math.Min(sigmaTo, Math.Sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom)));
        return (Math.Sqrt(sigmaTo * sigmaTo - up * up), up);
    }

    /// <summary>sample_dpmpp_2s_ancestral's s = t + h/2 with t = −log σ, t_next = −log σ_down, h = t_next − t: σ(s) = exp(−s).</summary>
    private static double MidpointSigma(double sigma, double sigmaDown)
    {
        double t = -Math.Log(sigma), h = -Math.Log(sigmaDown) - t;
        return Math.Exp(-(t + h / 2));
    }

    protected override void ResetHistory()
    {
        intervalStart?.Dispose();
        intervalStart = null;
    }

    // the interval a call belongs to: Sigmas entries 2i − 1 and 2i (RepeatAfterFirstThenLast) both hold σ_i
    private static int Interval(int tableIndex) => (tableIndex + 1) / 2;

    /// <summary>c_in = 1/√(σ² + 1) at the point the model is evaluated: σ_i for the first call, σ(s) for the second.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        int i = EnsureStepIndex(timestep);
        double sigma = StateInFirstOrder ? Sigmas[i] : sigmasMid[Interval(i - 1)];
        return sample / Math.Sqrt(sigma * sigma + 1);
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        bool firstCall = StateInFirstOrder;
        // the first call reads entry i, the second entry i − 1 (the interval's start)
        int interval = Interval(firstCall ? i : i - 1);
        double sigma = stepSigmas[interval], sigmaNext = stepSigmas[interval + 1];
        double sigmaDown = sigmasDown[interval], sigmaUp = sigmasUp[interval], sigmaMid = sigmasMid[interval];

        // denoised = model(x, σ) in the first call, denoised_2 = model(x_2, σ(s)) in the second
        var denoised = Denoised(modelOutput, sample, firstCall ? sigma : sigmaMid);

        Tensor prev;
        if (firstCall && sigmaDown == 0)
        {
            // "if sigma_down == 0: # Euler method": d = to_d(x, σ, denoised); x = x + d · (σ_down − σ)
            prev = sample + (sample - denoised) / sigma * (sigmaDown - sigma);
        }
        else
        {
            double t = -Math.Log(sigma), tNext = -Math.Log(sigmaDown), h = tNext - t;
            if (firstCall)
            {
                // x_2 = (σ(s)/σ(t)) · x − (−h · 0.5).expm1() · denoised
                prev = (sigmaMid / sigma) * sample - Expm1(-h * 0.5) * denoised;
                intervalStart = sample.Alias().DetachFromDisposeScope();
            }
            else
            {
                // x = (σ(t_next)/σ(t)) · x − (−h).expm1() · denoised_2, from the interval's start
                prev = (sigmaDown / sigma) * intervalStart! - Expm1(-h) * denoised;
                // "if sigmas[i + 1] > 0: x = x + noise_sampler(sigma, sigma_next) * s_noise * sigma_up" (s_noise = 1)
                if (sigmaNext > 0) prev = prev + DrawNoise(noise, modelOutput) * sigmaUp;
                ResetHistory();
            }
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(denoised));
    }

    /// <summary>x̂₀ at the σ the model saw: x − σ ε (ε prediction) or c_skip x + c_out v (v prediction), k-diffusion's denoisers.</summary>
    private Tensor Denoised(Tensor modelOutput, Tensor sample, double sigma) =>
        Config.PredictionType == PredictionType.Epsilon
            ? sample - sigma * modelOutput
            : modelOutput * (-sigma / Math.Sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1);

    /// <summary>torch's expm1: eˣ − 1 without cancellation for small x.</summary>
    private static double Expm1(double x) => Math.Abs(x) < 1e-5 ? x + x * x / 2 + x * x * x / 6 : Math.Exp(x) - 1;
}

using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' LCMScheduler config and defaults (Stable Diffusion's betas).</summary>
public sealed record LCMSchedulerConfig : ConsistencySchedulerConfig
{
    [JsonIgnore] public override string ClassName => "LCMScheduler";
}

/// <summary>
/// Latent Consistency Models (Luo et al. 2023) multistep sampling: each step maps x_t to the
/// consistency function's estimate x̂₀ = c_skip(t) x_t + c_out(t) f(x_t) ("denoised"), then, except
/// after the last step, re-noises it to the next timestep with fresh noise.
/// </summary>
public sealed class LCMScheduler : Scheduler
{
    private const double SigmaData = 0.5;

    public LCMScheduler(LCMSchedulerConfig? config = null) : base(config ?? new LCMSchedulerConfig()) { }

    public override LCMSchedulerConfig Config => (LCMSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    private double FinalAlphaCumprod => Config.SetAlphaToOne ? 1.0 : AlphasCumprod[0];

    /// <summary>Image-to-image strength for the next <see cref="Scheduler.SetTimesteps"/> (diffusers' set_timesteps(strength=…)).</summary>
    public double Strength { get; set; } = 1.0;

    /// <summary>Overrides original_inference_steps for the next <see cref="Scheduler.SetTimesteps"/>.</summary>
    public int? OriginalInferenceSteps { get; set; }

    protected override double[] ComputeTimesteps(int steps) => Config.DistillationTimesteps(steps, OriginalInferenceSteps, Strength);

    /// <summary>c_skip = σ_d² / ((s t)² + σ_d²), c_out = s t / √((s t)² + σ_d²), s = timestep_scaling.</summary>
    private (double Skip, double Out) BoundaryConditions(double timestep)
    {
        double scaled = timestep * Config.TimestepScaling;
        return (SigmaData * SigmaData / (scaled * scaled + SigmaData * SigmaData), scaled / Math.Sqrt(scaled * scaled + SigmaData * SigmaData));
    }

    /// <summary>PredOriginalSample is LCM's "denoised", the output to decode after the last step.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        long t = TrainingIndex(timestep);
        using var scope = DisposeScope.Enter();

        long prevT = i + 1 < Timesteps.Count ? (long)Timesteps[i + 1] : t;
        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = prevT >= 0 ? AlphasCumprod[prevT] : FinalAlphaCumprod;
        double betaProdT = 1 - alphaProdT, betaProdPrev = 1 - alphaProdPrev;
        var (cSkip, cOut) = BoundaryConditions(t);

        var predOriginal = Config.PredictionType switch
        {
            PredictionType.Epsilon => (sample - Math.Sqrt(betaProdT) * modelOutput) / Math.Sqrt(alphaProdT),
            PredictionType.Sample => modelOutput.Alias(),
            _ => Math.Sqrt(alphaProdT) * sample - Math.Sqrt(betaProdT) * modelOutput,
        };
        if (Config.ClipSample) predOriginal = predOriginal.Clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        var denoised = cOut * predOriginal + cSkip * sample;
        // re-noise to the next timestep: √ᾱ_prev x̂₀ + √(1 − ᾱ_prev) z; the last step returns x̂₀
        var prev = i != NumInferenceSteps - 1
            ? Math.Sqrt(alphaProdPrev) * denoised + Math.Sqrt(betaProdPrev) * DrawNoise(noise, denoised)
            : denoised.Alias();
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(denoised));
    }

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(original, noise, timesteps);
}

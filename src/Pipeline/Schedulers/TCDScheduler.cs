using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' TCDScheduler config and defaults (LCM's fields; clip_sample and timestep_scaling are declared but not read by its step).</summary>
public sealed record TCDSchedulerConfig : ConsistencySchedulerConfig
{
    [JsonIgnore] public override string ClassName => "TCDScheduler";
}

/// <summary>
/// Trajectory Consistency Distillation (Zheng et al. 2024) strategic stochastic sampling: each step predicts
/// x̂₀ and ε̂, moves them to the intermediate timestep s = ⌊(1 − γ) t_prev⌋ (the "pred_noised_sample"), then,
/// except after the last step, re-noises from s to t_prev with fresh noise. γ is <see cref="Scheduler.Eta"/>
/// (diffusers passes it as <c>eta</c>; 0 = deterministic, 1 = LCM-like full re-noising; the TCD pipeline's default is 0.3).
/// </summary>
public sealed class TCDScheduler : Scheduler
{
    /// <summary>diffusers' step(eta=0.3) default, the γ the TCD paper recommends.</summary>
    public const double DefaultGamma = 0.3;

    public TCDScheduler(TCDSchedulerConfig? config = null) : base(config ?? new TCDSchedulerConfig()) => Eta = DefaultGamma;

    public override TCDSchedulerConfig Config => (TCDSchedulerConfig)base.Config;

    public override double InitNoiseSigma => 1.0;

    /// <summary>TCD's step takes γ as <c>eta</c> (must be in [0, 1]).</summary>
    public override bool UsesEta => true;

    /// <summary>Image-to-image strength for the next <see cref="Scheduler.SetTimesteps"/> (diffusers' set_timesteps(strength=…)).</summary>
    public double Strength { get; set; } = 1.0;

    /// <summary>Overrides original_inference_steps for the next <see cref="Scheduler.SetTimesteps"/>.</summary>
    public int? OriginalInferenceSteps { get; set; }

    protected override double[] ComputeTimesteps(int steps) => Config.DistillationTimesteps(steps, OriginalInferenceSteps, Strength);

    /// <summary>PredOriginalSample is x̂₀; the last step's PrevSample is diffusers' pred_noised_sample.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        double gamma = Eta;
        // diffusers asserts 0 ≤ eta ≤ 1 ("gamma must be less than or equal to 1.0")
        if (gamma > 1) throw new InvalidOperationException($"TCDScheduler: eta (γ) must be in [0, 1], not {gamma}");
        long t = TrainingIndex(timestep);
        using var scope = DisposeScope.Enter();

        // the next timestep; after the last step diffusers uses 0 (not −1), so ᾱ_prev = ᾱ₀ and set_alpha_to_one is never read
        long prevT = i + 1 < Timesteps.Count ? (long)Timesteps[i + 1] : 0;
        // s = torch.floor((1 − η)·prev_t).long(): an int64 tensor times a Python float is float32 arithmetic
        long s = (long)MathF.Floor((float)(1 - gamma) * prevT);
        double alphaProdT = AlphasCumprod[t], betaProdT = 1 - AlphasCumprod[t];
        double alphaProdPrev = AlphasCumprod[prevT];
        double alphaProdS = AlphasCumprod[s], betaProdS = 1 - AlphasCumprod[s];

        var (predOriginal, predEpsilon) = PredictOriginalAndNoise(modelOutput, sample, alphaProdT, betaProdT);
        var predNoised = Math.Sqrt(alphaProdS) * predOriginal + Math.Sqrt(betaProdS) * predEpsilon;

        // re-noise s → t_prev: √(ᾱ_prev/ᾱ_s) x_s + √(1 − ᾱ_prev/ᾱ_s) z; no draw when γ = 0 or on the last step
        var prev = gamma > 0 && i != NumInferenceSteps - 1
            ? Math.Sqrt(alphaProdPrev / alphaProdS) * predNoised + Math.Sqrt(1 - alphaProdPrev / alphaProdS) * DrawNoise(noise, predNoised)
            : predNoised.Alias();
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }

    /// <summary>x̂₀ and ε̂ from the model output of each prediction type.</summary>
    private (Tensor X0, Tensor Eps) PredictOriginalAndNoise(Tensor modelOutput, Tensor sample, double alphaProdT, double betaProdT)
    {
        double sqrtAlpha = Math.Sqrt(alphaProdT), sqrtBeta = Math.Sqrt(betaProdT);
        switch (Config.PredictionType)
        {
            case PredictionType.Epsilon:
                return ((sample - sqrtBeta * modelOutput) / sqrtAlpha, modelOutput.Alias());
            case PredictionType.Sample:
                return (modelOutput.Alias(), (sample - sqrtAlpha * modelOutput) / sqrtBeta);
            default:
                return (sqrtAlpha * sample - sqrtBeta * modelOutput, sqrtAlpha * modelOutput + sqrtBeta * sample);
        }
    }

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(original, noise, timesteps);
}

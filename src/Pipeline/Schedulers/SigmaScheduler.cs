using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The k-diffusion family (Euler, Euler ancestral, LMS): samples live in the variance-exploding
/// parametrisation x = x₀ + σ ε with σ_t = √((1 − ᾱ_t)/ᾱ_t); the model sees x / √(σ² + 1).
/// Steps are counted from the first timestep seen (or the begin index).
/// </summary>
public abstract class SigmaScheduler : Scheduler, ISigmaSchedule
{
    private float[] sigmas;

    protected SigmaScheduler(SchedulerConfig config) : base(config)
    {
        // zero terminal SNR makes ᾱ_T = 0 and σ_T infinite; diffusers substitutes 2⁻²⁴
        if (config.RescalesBetasToZeroSnr) AlphasCumprod[^1] = MathF.Pow(2, -24);
        TrainingSigmas = ScheduleMath.TrainingSigmas(AlphasCumprod);
        LogTrainingSigmas = ScheduleMath.Log(TrainingSigmas);
        sigmas = TrainingSigmas.Reverse().Append(0f).ToArray();
    }

    public IReadOnlyList<float> Sigmas => sigmas;

    /// <summary>σ_t of the training timesteps, ascending in t.</summary>
    protected float[] TrainingSigmas { get; }

    /// <summary>log σ_t (float32), for mapping sigmas back to fractional timesteps.</summary>
    protected float[] LogTrainingSigmas { get; }

    protected void SetSigmas(float[] values) => sigmas = values;

    public override DType TimestepDType => DType.Float32;

    /// <summary>σ_max for linspace/trailing spacing, √(σ_max² + 1) for leading (diffusers' rule).</summary>
    public override double InitNoiseSigma
    {
        get
        {
            double max = sigmas.Max();
            return Config.TimestepSpacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing or TimestepSpacing.Simple ? max : Math.Sqrt(max * max + 1);
        }
    }

    /// <summary>c_in = 1/√(σ² + 1): the model was trained on unit-variance inputs.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        double sigma = sigmas[EnsureStepIndex(timestep)];
        return sample / Math.Sqrt(sigma * sigma + 1);
    }

    /// <summary>x = x₀ + σ ε, σ at the begin index (image-to-image) or at each given timestep.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps)
    {
        using var scope = DisposeScope.Enter();
        var values = HostValues(timesteps);
        var sigma = values.Select(t => sigmas[BeginIndex is null ? IndexForTimestep(t) : StepIndex ?? BeginIndex.Value]).ToArray();
        return scope.Keep(original + noise * PerItem(sigma, original));
    }

    /// <summary>The float32 timesteps of the spacing (linspace values stay fractional), descending.</summary>
    protected double[] FloatTimesteps(int steps)
    {
        var t = ScheduleMath.SpacedTimesteps(Config.TimestepSpacing, Config.NumTrainTimesteps, steps, Config.StepsOffset);
        return t.Select(v => (double)(float)v).ToArray();
    }

    /// <summary>np.interp of the training sigmas at the (fractional) timesteps.</summary>
    protected double[] InterpolatedSigmas(double[] timesteps) =>
        timesteps.Select(t => ScheduleMath.Interp(t, TrainingSigmas)).ToArray();

    /// <summary>
    /// The (float32) timesteps of the spacing and their interpolated σ, or, with <paramref name="karras"/>, Karras σ (ρ = 7) between
    /// those σ's extremes and their fractional timesteps (σ → t), rounded half to even where the scheduler rounds them (KDPM2).
    /// </summary>
    protected (double[] Timesteps, double[] Sigmas) SpacedOrKarrasSigmas(int steps, bool karras, bool roundKarrasTimesteps = false)
    {
        var timesteps = FloatTimesteps(steps);
        var sigmas = InterpolatedSigmas(timesteps);
        if (!karras) return (timesteps, sigmas);
        sigmas = ScheduleMath.KarrasSigmas(sigmas[^1], sigmas[0], steps);
        timesteps = sigmas.Select(s => ScheduleMath.SigmaToT(s, LogTrainingSigmas)).Select(t => roundKarrasTimesteps ? ScheduleMath.Round(t) : t).ToArray();
        return (timesteps, sigmas);
    }

    /// <summary>Reads σ at the current step and the next one.</summary>
    protected (double Sigma, double Next) CurrentSigmas(int index) => (sigmas[index], sigmas[index + 1]);
}

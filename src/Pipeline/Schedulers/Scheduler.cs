using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// What every scheduler shares: the training schedule (β, ᾱ) as host float32 tables, the inference
/// timesteps, the step counter of the index-based schedulers, and small tensor helpers.
/// </summary>
public abstract class Scheduler : IScheduler
{
    private readonly SchedulerConfig config;
    private double[] timesteps = [];

    protected Scheduler(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        this.config = config;
        Betas = NoiseSchedule.Betas(config, config.RescalesBetasToZeroSnr);
        AlphasCumprod = NoiseSchedule.AlphasCumprod(Betas);
    }

    /// <summary>The validated config (each scheduler narrows it to its own record type).</summary>
    public virtual SchedulerConfig Config => config;

    public virtual int Order => 1;

    public int NumInferenceSteps { get; protected set; }

    public IReadOnlyList<double> Timesteps => timesteps;

    public virtual DType TimestepDType => DType.Int64;

    public abstract double InitNoiseSigma { get; }

    /// <summary>False unless the scheduler's step uses η; then <see cref="Eta"/> is kept but has no effect.</summary>
    public virtual bool UsesEta => false;

    public double Eta
    {
        get => eta;
        set => eta = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(Eta), value, "eta must be ≥ 0");
    }

    private double eta;

    /// <summary>The device given to <see cref="SetTimesteps"/> (default for <see cref="TimestepsTensor"/>).</summary>
    public Device Device { get; private set; } = Device.CPU;

    /// <summary>Index of the next timestep, for schedulers that count steps (null until the first step).</summary>
    public int? StepIndex { get; protected set; }

    /// <summary>The index set by <see cref="SetBeginIndex"/>, or null.</summary>
    public int? BeginIndex { get; private set; }

    /// <summary>β_t of every training timestep (float32, as diffusers computes them).</summary>
    public IReadOnlyList<float> TrainingBetas => Betas;

    /// <summary>ᾱ_t of every training timestep.</summary>
    public IReadOnlyList<float> TrainingAlphasCumprod => AlphasCumprod;

    protected float[] Betas { get; }

    protected float[] AlphasCumprod { get; }

    public void SetTimesteps(int steps, Device? device = null)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "the number of inference steps must be at least 1");
        Device = device ?? Device.CPU;
        ResetHistory();
        StepIndex = null;
        BeginIndex = null;
        NumInferenceSteps = steps;
        timesteps = ComputeTimesteps(steps);
    }

    /// <summary>Computes the schedule for <paramref name="steps"/> steps; returns the timesteps in sampling order.</summary>
    protected abstract double[] ComputeTimesteps(int steps);

    /// <summary>Frees the tensors a multistep scheduler keeps between steps.</summary>
    protected virtual void ResetHistory() { }

    public void SetBeginIndex(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        BeginIndex = index;
    }

    /// <summary>Most schedulers feed the sample unchanged (a new handle onto it, so the caller may dispose either).</summary>
    public virtual Tensor ScaleModelInput(Tensor sample, double timestep) => sample.Alias();

    public abstract SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null);

    public abstract Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps);

    public Tensor TimestepsTensor(Device? device = null)
    {
        using var scope = DisposeScope.Enter();
        var t = TimestepDType switch
        {
            DType.Int64 => Tensor.From(timesteps.Select(v => (long)v).ToArray(), timesteps.Length),
            DType.Float32 => Tensor.From(timesteps.Select(v => (float)v).ToArray(), timesteps.Length),
            _ => Tensor.From(timesteps, timesteps.Length),
        };
        return scope.Keep(t.To(device ?? Device));
    }

    public void Dispose()
    {
        ResetHistory();
        GC.SuppressFinalize(this);
    }

    // ---- helpers for the implementations ----

    protected void RequireTimesteps()
    {
        if (NumInferenceSteps == 0)
            throw new InvalidOperationException($"{Config.ClassName}: call SetTimesteps before Step");
    }

    /// <summary>A training timestep index from a timestep value (must be an integer in range).</summary>
    protected long TrainingIndex(double timestep)
    {
        if (timestep != Math.Floor(timestep) || timestep < 0 || timestep >= AlphasCumprod.Length)
            throw new ArgumentOutOfRangeException(nameof(timestep), timestep, $"{Config.ClassName} needs an integer timestep in [0, {AlphasCumprod.Length})");
        return (long)timestep;
    }

    /// <summary>
    /// diffusers' index_for_timestep: the position of <paramref name="timestep"/> in the schedule; the
    /// second match when it occurs twice (so image-to-image that starts mid-schedule does not skip a step).
    /// </summary>
    protected virtual int IndexForTimestep(double timestep)
    {
        int first = -1;
        for (int i = 0; i < timesteps.Length; i++)
        {
            if (timesteps[i] != timestep) continue;
            if (first >= 0) return i;
            first = i;
        }
        return first >= 0 ? first : IndexWhenAbsent(timestep);
    }

    /// <summary>A timestep not in the schedule: refused, except by the DPM-Solver family, which takes the last index as diffusers' copy does.</summary>
    protected virtual int IndexWhenAbsent(double timestep) =>
        throw new ArgumentException($"timestep {timestep} is not in the schedule of {Config.ClassName}; pass one of Timesteps", nameof(timestep));

    /// <summary>
    /// The DPM-Solver family's add_noise: x = α_t x₀ + σ_t ε with the VP (α_t, σ_t) of σ at the begin index (img2img),
    /// the step index (inpainting) or each timestep, computed in the sample's dtype from σ as diffusers does.
    /// </summary>
    protected Tensor AddNoiseVp(Tensor original, Tensor noise, Tensor timesteps, float[] sigmas)
    {
        using var scope = DisposeScope.Enter();
        var sigma = HostValues(timesteps)
            .Select(t => sigmas[BeginIndex is null ? IndexForTimestep(t) : StepIndex ?? BeginIndex.Value])
            .ToArray();
        var s = PerItem(sigma, original);
        var alpha = 1.0 / (s.Square() + 1.0).Sqrt();
        return scope.Keep(alpha * original + s * alpha * noise);
    }

    /// <summary>Sets <see cref="StepIndex"/> on the first call of a sampling loop.</summary>
    protected int EnsureStepIndex(double timestep)
    {
        StepIndex ??= BeginIndex ?? IndexForTimestep(timestep);
        return StepIndex.Value;
    }

    /// <summary>Draws noise shaped like <paramref name="like"/>; no source means libtorch's global generator.</summary>
    protected static Tensor DrawNoise(INoiseSource? noise, Tensor like, DType? dtype = null) =>
        (noise ?? GeneratorNoise.Global).Next(like.Shape, dtype ?? like.DType, like.Device);

    /// <summary>The values of a timestep tensor on the host.</summary>
    protected static double[] HostValues(Tensor values)
    {
        using var scope = DisposeScope.Enter();
        return values.To(Device.CPU, DType.Float64).Flatten().ToArray<double>();
    }

    /// <summary>
    /// One coefficient per batch item as a tensor [n, 1, 1, …] that broadcasts against
    /// <paramref name="like"/>, converted to its dtype and device first (as diffusers indexes its tables).
    /// </summary>
    protected static Tensor PerItem(float[] values, Tensor like)
    {
        using var scope = DisposeScope.Enter();
        var shape = new long[Math.Max(like.Dim, 1)];
        Array.Fill(shape, 1L);
        shape[0] = values.Length;
        return scope.Keep(Tensor.From(values, values.Length).To(like.Device, like.DType).Reshape(shape));
    }

    /// <summary>
    /// The DDPM forward process q(x_t | x_0): √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε, with ᾱ_t taken in the
    /// sample's dtype as diffusers does.
    /// </summary>
    protected Tensor AddNoiseByAlphas(Tensor original, Tensor noise, Tensor timesteps)
    {
        using var scope = DisposeScope.Enter();
        var alphaBar = PerItem(HostValues(timesteps).Select(t => AlphasCumprod[TrainingIndex(t)]).ToArray(), original);
        var noisy = alphaBar.Sqrt() * original + (1.0 - alphaBar).Sqrt() * noise;
        return scope.Keep(noisy);
    }
}

using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// A diffusion sampler, modelled on diffusers' scheduler API. A generation loop reads:
/// <code>
/// scheduler.SetTimesteps(steps, device);
/// var sample = noise × scheduler.InitNoiseSigma;
/// foreach (var t in scheduler.Timesteps)
/// {
///     var input = scheduler.ScaleModelInput(sample, t);
///     var output = model(input, t);
///     sample = scheduler.Step(output, t, sample, noise).PrevSample;
/// }
/// </code>
/// Tensors passed in stay the caller's; every tensor returned is new and owned by the caller (it joins
/// the caller's current <see cref="DisposeScope"/>). A scheduler keeps host-side schedule tables, and
/// multistep schedulers keep a few tensors of history, freed by <see cref="IDisposable.Dispose"/> or
/// the next <see cref="SetTimesteps"/>.
/// </summary>
public interface IScheduler : IDisposable
{
    SchedulerConfig Config { get; }

    /// <summary>
    /// Model evaluations per inference step (diffusers' <c>order</c>): 2 for the two-call samplers (Heun, KDPM2,
    /// DPMSolverSDE), whose <see cref="Timesteps"/> list each step twice and whose <see cref="Step"/> alternates its two
    /// halves; 1 otherwise.
    /// </summary>
    int Order { get; }

    /// <summary>Number of inference steps of the current schedule (0 before <see cref="SetTimesteps"/>).</summary>
    int NumInferenceSteps { get; }

    /// <summary>The inference timesteps in sampling order (integers, or fractional for Karras sigmas).</summary>
    IReadOnlyList<double> Timesteps { get; }

    /// <summary>diffusers' dtype of the timesteps tensor: Int64, or Float32 for the Euler/LMS family.</summary>
    DType TimestepDType { get; }

    /// <summary>The standard deviation of the initial noise: latents = noise × InitNoiseSigma.</summary>
    double InitNoiseSigma { get; }

    /// <summary>
    /// Whether <see cref="Step"/> uses <see cref="Eta"/>: the scheduler declares it, as diffusers' step()
    /// declares an <c>eta</c> parameter (DDIM's does).
    /// </summary>
    bool UsesEta { get; }

    /// <summary>
    /// η, the weight of fresh noise in each step (DDIM's eq. 16: 0 = deterministic, 1 = DDPM-like). A scheduler
    /// that does not use η ignores it, as diffusers' pipelines pass eta only to a step() that takes it
    /// (prepare_extra_step_kwargs). Must be ≥ 0.
    /// </summary>
    double Eta { get; set; }

    /// <summary>Computes the inference schedule; resets the step counter and the multistep history.</summary>
    void SetTimesteps(int steps, Device? device = null);

    /// <summary>
    /// Starts at timestep index <paramref name="index"/> instead of finding the index from the first
    /// timestep (image-to-image: t_start × Order). Schedulers that look timesteps up directly ignore it.
    /// </summary>
    void SetBeginIndex(int index);

    /// <summary>The sample the model sees at timestep <paramref name="timestep"/> (e.g. x / √(σ² + 1)).</summary>
    Tensor ScaleModelInput(Tensor sample, double timestep);

    /// <summary>
    /// One reverse-diffusion step from <paramref name="timestep"/> to the next. Noise, where the method
    /// needs it, is drawn from <paramref name="noise"/> (null: libtorch's global generator).
    /// </summary>
    SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null);

    /// <summary>The forward process: <paramref name="original"/> noised to <paramref name="timesteps"/> (one per batch item, or one for all).</summary>
    Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps);

    /// <summary>The timesteps as a new tensor of <see cref="TimestepDType"/> (diffusers' <c>scheduler.timesteps</c>).</summary>
    Tensor TimestepsTensor(Device? device = null);
}

/// <summary>A scheduler that walks a σ schedule (Euler, Euler ancestral, LMS, DPM-Solver).</summary>
public interface ISigmaSchedule
{
    /// <summary>
    /// σ of every inference timestep, followed by the final σ (0, or σ_min where configured): diffusers' <c>sigmas</c>, so
    /// for the second-order schedulers laid out as theirs, one entry per model call (Heun) or per call plus two (KDPM2).
    /// </summary>
    IReadOnlyList<float> Sigmas { get; }
}

/// <summary>
/// The result of <see cref="IScheduler.Step"/>: the sample at the next timestep, and the model's
/// current estimate of the clean sample x̂₀ where the method computes one (LCM: its "denoised").
/// </summary>
public sealed record SchedulerStepOutput(Tensor PrevSample, Tensor? PredOriginalSample);

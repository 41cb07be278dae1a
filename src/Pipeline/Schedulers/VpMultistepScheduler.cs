using LatentDiffusion.Torch;
using static LatentDiffusion.Pipeline.Schedulers.VpSigma;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// What diffusers' multistep exponential-integrator schedulers on the VP schedule share (UniPC, DEIS; their
/// set_timesteps, index_for_timestep and add_noise are copies of DPM-Solver's): the inference timesteps of the
/// three spacings or Karras sigmas, σ at each of them plus a final σ, α_t/σ_t/λ_t of a σ, and add_noise.
/// </summary>
public abstract class VpMultistepScheduler : Scheduler, ISigmaSchedule
{
    private readonly float[] trainingSigmas;
    private readonly float[] logTrainingSigmas;
    private float[] sigmas;

    protected VpMultistepScheduler(SchedulerConfig config, bool zeroTerminalSnr) : base(config)
    {
        // diffusers: "close to 0 without being 0 so first sigma is not inf" (fp16's smallest subnormal)
        if (zeroTerminalSnr) AlphasCumprod[^1] = MathF.Pow(2, -24);
        trainingSigmas = ScheduleMath.TrainingSigmas(AlphasCumprod);
        logTrainingSigmas = ScheduleMath.Log(trainingSigmas);
        sigmas = trainingSigmas;
    }

    public override double InitNoiseSigma => 1.0;

    public IReadOnlyList<float> Sigmas => sigmas;

    /// <summary>σ of the inference step <paramref name="index"/> (index = number of steps: the final σ).</summary>
    protected float SigmaAt(int index) => sigmas[index];

    /// <summary>Whether the config asks for Karras sigmas (<c>use_karras_sigmas</c>).</summary>
    protected abstract bool UseKarrasSigmas { get; }

    /// <summary>
    /// The σ appended after the last step: diffusers' <c>final_sigmas_type</c> where the class has it.
    /// <paramref name="lastKarrasSigma"/> is the last step's σ of a Karras schedule, null for the discrete one.
    /// </summary>
    protected abstract float FinalSigma(double? lastKarrasSigma, float trainingSigmaMin);

    protected override double[] ComputeTimesteps(int steps)
    {
        int trainSteps = Config.NumTrainTimesteps;
        double[] timesteps = Config.TimestepSpacing switch
        {
            // linspace(0, T − 1, n + 1).round()[::-1][:-1]: n + 1 points, the final 0 dropped
            TimestepSpacing.Linspace => ScheduleMath.Linspace(0, trainSteps - 1, steps + 1).Select(ScheduleMath.Round).Reverse().Take(steps).ToArray(),
            // arange(n + 1) · (T // (n + 1)), descending without the last, + steps_offset
            TimestepSpacing.Leading => Enumerable.Range(0, steps + 1).Select(i => (double)(i * (trainSteps / (steps + 1)))).Reverse().Take(steps).Select(t => t + Config.StepsOffset).ToArray(),
            // arange(T, 0, −T/n).round() − 1
            _ => ScheduleMath.Arange(trainSteps, 0, -(trainSteps / (double)steps)).Select(t => ScheduleMath.Round(t) - 1).ToArray(),
        };

        if (UseKarrasSigmas)
        {
            var karras = ScheduleMath.KarrasSigmas(trainingSigmas[0], trainingSigmas[^1], steps);
            timesteps = karras.Select(v => ScheduleMath.Round(ScheduleMath.SigmaToT(v, logTrainingSigmas))).ToArray();
            sigmas = karras.Select(v => (float)v).Append(FinalSigma(karras[^1], trainingSigmas[0])).ToArray();
        }
        else
        {
            // np.interp over the float32 training sigmas (float64 result), then float32
            sigmas = timesteps.Select(t => (float)ScheduleMath.Interp(t, trainingSigmas)).Append(FinalSigma(null, trainingSigmas[0])).ToArray();
        }
        return timesteps;
    }

    /// <summary>diffusers' DPM-Solver copy of index_for_timestep falls back to the last index.</summary>
    protected override int IndexWhenAbsent(double timestep) => Timesteps.Count - 1;

    public override Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => AddNoiseVp(original, noise, timesteps, sigmas);
}

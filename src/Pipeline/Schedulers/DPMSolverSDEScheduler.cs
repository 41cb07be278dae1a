using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' DPMSolverSDEScheduler config and defaults (its beta range defaults are SD's, unlike most classes).</summary>
public sealed record DPMSolverSDESchedulerConfig : SecondOrderSchedulerConfig
{
    [JsonIgnore] public override string ClassName => "DPMSolverSDEScheduler";

    /// <summary>The Brownian tree's seed for every image; null: each image's tree is seeded from its noise source.</summary>
    [JsonPropertyName("noise_sampler_seed")] public long? NoiseSamplerSeed { get; init; }

    public override void Validate()
    {
        base.Validate();
        // diffusers: NotImplementedError("prediction_type not implemented yet: sample")
        if (PredictionType == PredictionType.Sample) throw Unsupported("prediction_type", PredictionType);
    }
}

/// <summary>
/// DPM-Solver++(2S) SDE as k-diffusion's sample_dpmpp_sde (AUTOMATIC1111's "DPM++ SDE"), in diffusers' two-call form
/// (order 2): each σ interval takes a first step to the midpoint in log σ, then a second from the interval start
/// with the model output at the midpoint; both add ancestral noise from a Brownian tree over [σ_min, σ_max].
/// <para>
/// The tree is ours (<see cref="BrownianTreeNoiseSampler"/>): diffusers and k-diffusion use torchsde's BrownianTree,
/// whose numbers cannot be reproduced without torchsde, so a seed reproduces this library's images run to run but
/// not diffusers' or AUTOMATIC1111's. Everything else follows diffusers 0.30.3.
/// </para>
/// </summary>
public sealed class DPMSolverSDEScheduler : SigmaScheduler
{
    private const double MidpointRatio = 0.5, SNoise = 1.0;
    private Tensor? intervalSample;   // diffusers' self.sample: x at the interval start, kept between the two calls (owned)
    private double? midPointSigma;
    private ISigmaNoiseSampler? treeSampler;   // created at the first step (owned)

    public DPMSolverSDEScheduler(DPMSolverSDESchedulerConfig? config = null)
        : base(config ?? new DPMSolverSDESchedulerConfig()) { }

    public override DPMSolverSDESchedulerConfig Config => (DPMSolverSDESchedulerConfig)base.Config;

    /// <summary>Two model calls per σ interval (diffusers' order 2).</summary>
    public override int Order => 2;

    /// <summary>
    /// Replaces the Brownian tree (e.g. a test injecting recorded increments); the caller keeps it. Null: a tree is
    /// created at the first step after each <see cref="Scheduler.SetTimesteps"/>.
    /// </summary>
    public ISigmaNoiseSampler? NoiseSampler { get; set; }

    private bool StateInFirstOrder => intervalSample is null;

    protected override double[] ComputeTimesteps(int steps)
    {
        // linspace in float64 (np.linspace(..., dtype=float)), leading/trailing as the other σ schedulers
        var timesteps = ScheduleMath.SpacedTimesteps(Config.TimestepSpacing, Config.NumTrainTimesteps, steps, Config.StepsOffset);
        var sigmas = InterpolatedSigmas(timesteps);
        if (Config.UseKarrasSigmas)
        {
            // _convert_to_karras of the interpolated inference sigmas (not the training range); timesteps stay fractional
            sigmas = ScheduleMath.KarrasSigmas(sigmas[^1], sigmas[0], steps);
            timesteps = sigmas.Select(s => ScheduleMath.SigmaToT(s, LogTrainingSigmas)).ToArray();
        }
        // _second_order_timesteps: the midpoints of consecutive sigmas in t = −log σ, mapped back to timesteps
        var midpoints = new double[steps - 1];
        for (int k = 0; k < midpoints.Length; k++)
        {
            double t = -Math.Log(sigmas[k]), tNext = -Math.Log(sigmas[k + 1]);
            midpoints[k] = ScheduleMath.SigmaToT(Math.Exp(-(t + (tNext - t) * MidpointRatio)), LogTrainingSigmas);
        }

        // sigmas [σ0, σ1, σ1, …, σ_{n−1}, σ_{n−1}, 0] (float32); timesteps [t0, m0, t1, m1, …, t_{n−1}]
        var interleavedSigmas = new List<float> { (float)sigmas[0] };
        for (int k = 1; k < steps; k++) interleavedSigmas.AddRange([(float)sigmas[k], (float)sigmas[k]]);
        interleavedSigmas.Add(0f);
        SetSigmas(interleavedSigmas.ToArray());
        var interleaved = new List<double> { timesteps[0] };
        for (int k = 1; k < steps; k++) interleaved.AddRange([midpoints[k - 1], timesteps[k]]);
        return interleaved.ToArray();
    }

    protected override void ResetHistory()
    {
        intervalSample?.Dispose();
        intervalSample = null;
        midPointSigma = null;
        treeSampler = null; // diffusers' set_timesteps: noise_sampler = None
    }

    /// <summary>The first call of an interval sees σ_i; the second the midpoint σ its first call stepped to.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        double sigma = StateInFirstOrder ? Sigmas[EnsureStepIndex(timestep)] : midPointSigma!.Value;
        return sample / Math.Sqrt(sigma * sigma + 1);
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        var sampler = NoiseSampler ?? (treeSampler ??= CreateTree(sample, noise));

        bool first = StateInFirstOrder;
        // the first call steps σ_i → midpoint, the second σ_{i−1} → σ_i (in the interleaved sigmas)
        double sigma = first ? Sigmas[i] : Sigmas[i - 1];
        double sigmaNext = first ? Sigmas[i + 1] : Sigmas[i];
        double t = TOfSigma(sigma), tNext = TOfSigma(sigmaNext);
        double tProposed = t + (tNext - t) * MidpointRatio;

        // x̂₀ from the model output at the σ the model saw
        double sigmaInput = first ? sigma : SigmaOfT(tProposed);
        var predOriginal = Config.PredictionType == PredictionType.Epsilon
            ? sample - sigmaInput * modelOutput
            : modelOutput * (-sigmaInput / Math.Sqrt(sigmaInput * sigmaInput + 1)) + sample / (sigmaInput * sigmaInput + 1);

        Tensor prev;
        if (sigmaNext == 0)
        {
            // the last interval: an Euler step to σ = 0, no noise
            var derivative = (sample - predOriginal) / sigma;
            prev = sample + derivative * (sigmaNext - sigma);
        }
        else
        {
            var x = sample;
            if (first) tNext = tProposed;
            else x = intervalSample!; // the second call restarts from the interval start
            double sigmaFrom = SigmaOfT(t), sigmaTo = SigmaOfT(tNext);
            double sigmaUp = Math.Min(sigmaTo, Math.Sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom)));
            double sigmaDown = Math.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
            double ancestralT = TOfSigma(sigmaDown);
            // (σ_fn(t_a)/σ_fn(t)) x − expm1(t − t_a) x̂₀ = (σ_down/σ) x − (σ_down/σ − 1) x̂₀
            prev = SigmaOfT(ancestralT) / SigmaOfT(t) * x - Expm1(t - ancestralT) * predOriginal;
            var z = sampler.Next(SigmaOfT(t), SigmaOfT(tNext));
            prev = prev + z.To(prev.Device, prev.DType) * (SNoise * sigmaUp);
            if (first)
            {
                intervalSample = sample.Alias().DetachFromDisposeScope();
                midPointSigma = SigmaOfT(tNext);
            }
            else
            {
                intervalSample!.Dispose();
                intervalSample = null;
                midPointSigma = null;
            }
        }
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }

    /// <summary>t = −log σ (k-diffusion's t_fn).</summary>
    private static double TOfSigma(double sigma) => -Math.Log(sigma);

    /// <summary>σ = e^{−t} (k-diffusion's sigma_fn).</summary>
    private static double SigmaOfT(double t) => Math.Exp(-t);

    private static double Expm1(double x) => Math.Abs(x) < 1e-5 ? x + 0.5 * x * x + x * x * x / 6 : Math.Exp(x) - 1;

    /// <summary>
    /// The Brownian tree over [min positive σ, max σ]: seeded with noise_sampler_seed for the whole batch when the
    /// config has one (diffusers), otherwise per image from one draw of its noise source (k-diffusion / AUTOMATIC1111
    /// seed each image's tree), so image i of a batch equals a single-image run with its seed.
    /// </summary>
    private BrownianTreeNoiseSampler CreateTree(Tensor sample, INoiseSource? noise)
    {
        var positive = Sigmas.Where(s => s > 0).ToArray();
        double sigmaMin = positive.Min(), sigmaMax = Sigmas.Max();
        IReadOnlyList<ulong> seeds;
        if (Config.NoiseSamplerSeed is { } seed)
        {
            seeds = [unchecked((ulong)seed)];
        }
        else
        {
            using var scope = DisposeScope.Enter();
            long batch = sample.Shape[0];
            var entropy = (noise ?? GeneratorNoise.Global).Next([batch, 2], DType.Float64, Device.CPU).ToArray<double>();
            seeds = Enumerable.Range(0, (int)batch)
                .Select(b => BrownianTree.Mix((ulong)BitConverter.DoubleToInt64Bits(entropy[2 * b]), (ulong)BitConverter.DoubleToInt64Bits(entropy[2 * b + 1])))
                .ToArray();
        }
        return new BrownianTreeNoiseSampler(sample.Shape, sigmaMin, sigmaMax, seeds, sample.DType, sample.Device);
    }
}

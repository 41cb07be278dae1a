using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' LMSDiscreteScheduler config and defaults.</summary>
public sealed record LMSDiscreteSchedulerConfig : SchedulerConfig
{
    public LMSDiscreteSchedulerConfig() => TimestepSpacing = TimestepSpacing.Linspace;

    [JsonIgnore] public override string ClassName => "LMSDiscreteScheduler";

    protected internal override bool SupportsSimpleSpacing => true;

    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("use_exponential_sigmas")] public bool UseExponentialSigmas { get; init; }
    [JsonPropertyName("use_beta_sigmas")] public bool UseBetaSigmas { get; init; }

    public override void Validate()
    {
        base.Validate();
        RequireOneSigmaSpacing(UseKarrasSigmas, UseExponentialSigmas, UseBetaSigmas);
    }
}

/// <summary>
/// k-diffusion's linear multistep sampler: x_{i+1} = x_i + Σ_k c_k d_{i−k}, where d = (x − x̂₀)/σ and
/// c_k = ∫_{σ_i}^{σ_{i+1}} ℓ_k(τ) dτ integrates the Lagrange basis polynomial through the last
/// (up to <see cref="LmsOrder"/>) sigmas. The integrand is a polynomial of degree ≤ 3, so a 4-point
/// Gauss–Legendre rule is exact (diffusers calls scipy's adaptive quad for the same number).
/// </summary>
public sealed class LMSDiscreteScheduler : SigmaScheduler
{
    private readonly List<Tensor> derivatives = new();   // d of the last steps, newest last (owned)

    public LMSDiscreteScheduler(LMSDiscreteSchedulerConfig? config = null) : base(config ?? new LMSDiscreteSchedulerConfig()) { }

    public override LMSDiscreteSchedulerConfig Config => (LMSDiscreteSchedulerConfig)base.Config;

    /// <summary>The multistep order (diffusers' step(order=4)).</summary>
    public int LmsOrder { get; set; } = 4;

    /// <summary>Karras (exponential, beta) timesteps come from NumPy as float64 in diffusers.</summary>
    public override DType TimestepDType => Config.UseKarrasSigmas || Config.UseExponentialSigmas || Config.UseBetaSigmas ? DType.Float64 : DType.Float32;

    protected override double[] ComputeTimesteps(int steps)
    {
        var timesteps = FloatTimesteps(steps);
        var sigmas = InterpolatedSigmas(timesteps);
        if (ScheduleMath.ConvertedSigmas(Config.UseKarrasSigmas, Config.UseExponentialSigmas, Config.UseBetaSigmas, sigmas[^1], sigmas[0], steps) is { } converted)
        {
            sigmas = converted;
            timesteps = sigmas.Select(s => ScheduleMath.SigmaToT(s, LogTrainingSigmas)).ToArray();
        }
        SetSigmas(sigmas.Select(s => (float)s).Append(0f).ToArray());
        return timesteps;
    }

    protected override void ResetHistory()
    {
        foreach (var d in derivatives) d.Dispose();
        derivatives.Clear();
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        if (LmsOrder < 1) throw new InvalidOperationException("LmsOrder must be at least 1");
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();
        double sigma = Sigmas[i];

        var predOriginal = Config.PredictionType switch
        {
            PredictionType.Epsilon => sample - sigma * modelOutput,
            PredictionType.VPrediction => modelOutput * (-sigma / Math.Sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1),
            _ => modelOutput.Alias(),
        };

        // d_i = (x − x̂₀)/σ_i
        derivatives.Add(((sample - predOriginal) / sigma).DetachFromDisposeScope());
        while (derivatives.Count > LmsOrder)
        {
            derivatives[0].Dispose();
            derivatives.RemoveAt(0);
        }

        int order = Math.Min(i + 1, LmsOrder);
        Tensor? sum = null;
        for (int k = 0; k < order; k++)
        {
            // coefficient k multiplies the derivative k steps back
            var term = LmsCoefficient(order, i, k) * derivatives[^(k + 1)];
            sum = sum is null ? term : sum + term;
        }
        var prev = sample + sum!;
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(predOriginal));
    }

    /// <summary>
    /// ∫_{σ_t}^{σ_{t+1}} Π_{k≠j} (τ − σ_{t−k}) / (σ_{t−j} − σ_{t−k}) dτ, with j = <paramref name="current"/>.
    /// </summary>
    private double LmsCoefficient(int order, int t, int current)
    {
        var sigmas = Sigmas;
        double Basis(double tau)
        {
            double product = 1.0;
            for (int k = 0; k < order; k++)
            {
                if (k == current) continue;
                product *= (tau - sigmas[t - k]) / (sigmas[t - current] - sigmas[t - k]);
            }
            return product;
        }
        return GaussLegendre4(Basis, sigmas[t], sigmas[t + 1]);
    }

    /// <summary>4-point Gauss–Legendre quadrature on [a, b]: exact for polynomials of degree ≤ 7.</summary>
    private static double GaussLegendre4(Func<double, double> f, double a, double b)
    {
        // nodes ±√(3/7 ∓ 2/7 √(6/5)), weights (18 ± √30)/36
        double inner = Math.Sqrt(3.0 / 7 - 2.0 / 7 * Math.Sqrt(6.0 / 5)), outer = Math.Sqrt(3.0 / 7 + 2.0 / 7 * Math.Sqrt(6.0 / 5));
        double wInner = (18 + Math.Sqrt(30)) / 36, wOuter = (18 - Math.Sqrt(30)) / 36;
        double mid = (a + b) / 2, half = (b - a) / 2;
        double sum = wInner * (f(mid - half * inner) + f(mid + half * inner)) + wOuter * (f(mid - half * outer) + f(mid + half * outer));
        return sum * half;
    }
}

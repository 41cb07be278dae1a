using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;
using static LatentDiffusion.Pipeline.Schedulers.VpSigma;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' DEISMultistepScheduler config and defaults (diffusers 0.30.3's options).</summary>
public sealed record DEISMultistepSchedulerConfig : SchedulerConfig
{
    public DEISMultistepSchedulerConfig() => TimestepSpacing = TimestepSpacing.Linspace;

    [JsonIgnore] public override string ClassName => "DEISMultistepScheduler";

    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    [JsonPropertyName("algorithm_type")] public DeisAlgorithmType AlgorithmType { get; init; } = DeisAlgorithmType.Deis;
    [JsonPropertyName("solver_type")] public DeisSolverType SolverType { get; init; } = DeisSolverType.LogRho;
    /// <summary>Use lower-order steps at the end when there are fewer than 15 steps.</summary>
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; } = true;
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }

    public override void Validate()
    {
        base.Validate();
        ValidateThresholding(DynamicThresholdingRatio, SampleMaxValue);
        if (SolverOrder is < 1 or > 3) throw Invalid("solver_order", $"{SolverOrder} (must be 1, 2 or 3)");
        if (Thresholding) throw Unsupported("thresholding", true);
    }
}

/// <summary>
/// DEIS (Zhang &amp; Chen 2023), diffusers' "logrho" multistep variant: the ε̂ of the last 1–3 steps are
/// extrapolated by a Lagrange polynomial in log ρ (ρ = σ_t/α_t) and integrated exactly over [ρ_s, ρ_t].
/// </summary>
public sealed class DEISMultistepScheduler : VpMultistepScheduler
{
    private readonly ModelOutputHistory modelOutputs;   // ε̂ of the last solver_order steps, newest last (owned)
    private int lowerOrderNums;

    public DEISMultistepScheduler(DEISMultistepSchedulerConfig? config = null)
        : base(config ?? new DEISMultistepSchedulerConfig(), zeroTerminalSnr: false)
    {
        modelOutputs = new ModelOutputHistory(Config.SolverOrder);
    }

    public override DEISMultistepSchedulerConfig Config => (DEISMultistepSchedulerConfig)base.Config;

    protected override bool UseKarrasSigmas => Config.UseKarrasSigmas;

    // diffusers' DEIS always ends at σ_min: the training σ₀, or the last Karras σ repeated
    protected override float FinalSigma(double? lastKarrasSigma, float trainingSigmaMin) =>
        lastKarrasSigma is { } k ? (float)k : trainingSigmaMin;

    protected override void ResetHistory()
    {
        modelOutputs.Clear();
        lowerOrderNums = 0;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        int n = Timesteps.Count;
        // as DPM-Solver: lower orders for the last two steps only below 15 steps
        bool lowerOrderFinal = i == n - 1 && Config.LowerOrderFinal && n < 15;
        bool lowerOrderSecond = i == n - 2 && Config.LowerOrderFinal && n < 15;

        using var scope = DisposeScope.Enter();
        var (x0, eps) = ConvertModelOutput(modelOutput, sample, SigmaAt(i));
        modelOutputs.Push(eps);

        Tensor prev;
        if (Config.SolverOrder == 1 || lowerOrderNums < 1 || lowerOrderFinal)
            prev = FirstOrderUpdate(eps, sample, i);
        else if (Config.SolverOrder == 2 || lowerOrderNums < 2 || lowerOrderSecond)
            prev = SecondOrderUpdate(sample, i);
        else
            prev = ThirdOrderUpdate(sample, i);
        if (lowerOrderNums < Config.SolverOrder) lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), scope.Keep(x0));
    }

    /// <summary>diffusers converts every prediction type to x̂₀ first, then to the ε̂ = (x − α x̂₀)/σ DEIS integrates.</summary>
    private (Tensor X0, Tensor Eps) ConvertModelOutput(Tensor modelOutput, Tensor sample, double sigma)
    {
        var (alpha, sigmaT) = AlphaSigma(sigma);
        var x0 = Config.PredictionType switch
        {
            PredictionType.Epsilon => (sample - sigmaT * modelOutput) / alpha,
            PredictionType.Sample => modelOutput.Alias(),
            _ => alpha * sample - sigmaT * modelOutput,
        };
        return (x0, (sample - alpha * x0) / sigmaT);
    }

    /// <summary>First order (= DDIM): x_t = (α_t/α_s) x − σ_t (e^h − 1) ε̂, h = λ_t − λ_s.</summary>
    private Tensor FirstOrderUpdate(Tensor eps, Tensor x, int i)
    {
        var (alphaT, sigmaT) = AlphaSigma(SigmaAt(i + 1));
        var (alphaS, _) = AlphaSigma(SigmaAt(i));
        double h = Lambda(SigmaAt(i + 1)) - Lambda(SigmaAt(i));
        return alphaT / alphaS * x - sigmaT * (Math.Exp(h) - 1.0) * eps;
    }

    /// <summary>ρ = σ_t/α_t of inference step <paramref name="index"/> (= the VE σ).</summary>
    private double Rho(int index)
    {
        var (alpha, sigma) = AlphaSigma(SigmaAt(index));
        return sigma / alpha;
    }

    /// <summary>∫ (log t − log c)/(log b − log c) dt: the antiderivative of the linear Lagrange basis in log ρ.</summary>
    private static double LinearBasisIntegral(double t, double b, double c) =>
        t * (-Math.Log(c) + Math.Log(t) - 1) / (Math.Log(b) - Math.Log(c));

    /// <summary>∫ (log t − log c)(log t − log d)/((log b − log c)(log b − log d)) dt: the quadratic basis in log ρ.</summary>
    private static double QuadraticBasisIntegral(double t, double b, double c, double d)
    {
        double lt = Math.Log(t), lc = Math.Log(c), ld = Math.Log(d);
        double numerator = t * (lc * (ld - lt + 1) - ld * lt + ld + lt * lt - 2 * lt + 2);
        return numerator / ((Math.Log(b) - lc) * (Math.Log(b) - ld));
    }

    /// <summary>x_t = α_t (x/α_s0 + c₁ m0 + c₂ m1), cₖ the basis integrals over [ρ_s0, ρ_t].</summary>
    private Tensor SecondOrderUpdate(Tensor x, int i)
    {
        var (alphaT, _) = AlphaSigma(SigmaAt(i + 1));
        var (alphaS0, _) = AlphaSigma(SigmaAt(i));
        double rhoT = Rho(i + 1), rhoS0 = Rho(i), rhoS1 = Rho(i - 1);
        var m0 = modelOutputs[^1]!;
        var m1 = modelOutputs[^2]!;
        double coef1 = LinearBasisIntegral(rhoT, rhoS0, rhoS1) - LinearBasisIntegral(rhoS0, rhoS0, rhoS1);
        double coef2 = LinearBasisIntegral(rhoT, rhoS1, rhoS0) - LinearBasisIntegral(rhoS0, rhoS1, rhoS0);
        return alphaT * (x / alphaS0 + coef1 * m0 + coef2 * m1);
    }

    /// <summary>Third order: the quadratic Lagrange basis over the last three ρ.</summary>
    private Tensor ThirdOrderUpdate(Tensor x, int i)
    {
        var (alphaT, _) = AlphaSigma(SigmaAt(i + 1));
        var (alphaS0, _) = AlphaSigma(SigmaAt(i));
        double rhoT = Rho(i + 1), rhoS0 = Rho(i), rhoS1 = Rho(i - 1), rhoS2 = Rho(i - 2);
        var m0 = modelOutputs[^1]!;
        var m1 = modelOutputs[^2]!;
        var m2 = modelOutputs[^3]!;
        double coef1 = QuadraticBasisIntegral(rhoT, rhoS0, rhoS1, rhoS2) - QuadraticBasisIntegral(rhoS0, rhoS0, rhoS1, rhoS2);
        double coef2 = QuadraticBasisIntegral(rhoT, rhoS1, rhoS2, rhoS0) - QuadraticBasisIntegral(rhoS0, rhoS1, rhoS2, rhoS0);
        double coef3 = QuadraticBasisIntegral(rhoT, rhoS2, rhoS0, rhoS1) - QuadraticBasisIntegral(rhoS0, rhoS2, rhoS0, rhoS1);
        return alphaT * (x / alphaS0 + coef1 * m0 + coef2 * m1 + coef3 * m2);
    }
}

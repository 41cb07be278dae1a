using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;
using static LatentDiffusion.Pipeline.Schedulers.VpSigma;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>diffusers' UniPCMultistepScheduler config and defaults (diffusers 0.30.3's options).</summary>
public sealed record UniPCMultistepSchedulerConfig : SchedulerConfig
{
    /// <summary>The largest solver_order accepted here (diffusers takes any; higher orders solve ill-conditioned Vandermonde systems).</summary>
    public const int MaxSolverOrder = 10;

    public UniPCMultistepSchedulerConfig() => TimestepSpacing = TimestepSpacing.Linspace;

    [JsonIgnore] public override string ClassName => "UniPCMultistepScheduler";

    /// <summary>The order p of UniP; UniC raises the accuracy to p + 1.</summary>
    [JsonPropertyName("solver_order")] public int SolverOrder { get; init; } = 2;
    [JsonPropertyName("thresholding")] public bool Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double DynamicThresholdingRatio { get; init; } = 0.995;
    [JsonPropertyName("sample_max_value")] public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>Integrate the data prediction x̂₀ (UniPC's "predict_x0"); false integrates ε̂.</summary>
    [JsonPropertyName("predict_x0")] public bool PredictX0 { get; init; } = true;
    [JsonPropertyName("solver_type")] public UniPcSolverType SolverType { get; init; } = UniPcSolverType.Bh2;
    /// <summary>Lower the order towards the end so the last step is first order (for any number of steps, unlike DPM-Solver).</summary>
    [JsonPropertyName("lower_order_final")] public bool LowerOrderFinal { get; init; } = true;
    /// <summary>Step indices after which the corrector is skipped (the corrector at step i corrects step i − 1's prediction).</summary>
    [JsonPropertyName("disable_corrector")] public int[] DisableCorrector { get; init; } = [];
    /// <summary>Another scheduler as predictor ("solver_p + UniC"): only null is supported.</summary>
    [JsonPropertyName("solver_p")] public JsonNode? SolverP { get; init; }
    [JsonPropertyName("use_karras_sigmas")] public bool UseKarrasSigmas { get; init; }
    [JsonPropertyName("final_sigmas_type")] public FinalSigmasType FinalSigmasType { get; init; } = FinalSigmasType.Zero;
    [JsonPropertyName("rescale_betas_zero_snr")] public bool RescaleBetasZeroSnr { get; init; }

    internal override bool RescalesBetasToZeroSnr => RescaleBetasZeroSnr;

    public override void Validate()
    {
        base.Validate();
        ValidateThresholding(DynamicThresholdingRatio, SampleMaxValue);
        if (SolverOrder is < 1 or > MaxSolverOrder) throw Invalid("solver_order", $"{SolverOrder} (must be between 1 and {MaxSolverOrder})");
        if (Thresholding) throw Unsupported("thresholding", true);
        if (SolverP is not null) throw Invalid("solver_p", "another scheduler as UniPC's predictor is not supported by this library (must be null)");
        if (DisableCorrector is null) throw Invalid("disable_corrector", "null (must be a list of step indices)");
        // The last step ends at σ = 0, where λ = ∞: ε-space UniPC (e^∞ − 1)·0 and a multistep last step (differences
        // over r = 0) give NaN or ∞ in diffusers as they would here, so those combinations need a final σ_min.
        if (FinalSigmasType == FinalSigmasType.Zero && !PredictX0)
            throw Invalid("final_sigmas_type", "'zero' is not supported with predict_x0 false (the last step would be NaN); use 'sigma_min'");
        if (FinalSigmasType == FinalSigmasType.Zero && !LowerOrderFinal && SolverOrder > 1)
            throw Invalid("final_sigmas_type", "'zero' needs lower_order_final when solver_order > 1 (a multistep last step would be infinite); use 'sigma_min'");
    }

    // value equality of the list (a record compares arrays by reference)
    public bool Equals(UniPCMultistepSchedulerConfig? other) =>
        base.Equals(other) && SolverOrder == other.SolverOrder && Thresholding == other.Thresholding
        && DynamicThresholdingRatio.Equals(other.DynamicThresholdingRatio) && SampleMaxValue.Equals(other.SampleMaxValue)
        && PredictX0 == other.PredictX0 && SolverType == other.SolverType && LowerOrderFinal == other.LowerOrderFinal
        && DisableCorrector.SequenceEqual(other.DisableCorrector) && SolverP is null == other.SolverP is null
        && UseKarrasSigmas == other.UseKarrasSigmas && FinalSigmasType == other.FinalSigmasType && RescaleBetasZeroSnr == other.RescaleBetasZeroSnr;

    public override int GetHashCode() => HashCode.Combine(base.GetHashCode(), SolverOrder, PredictX0, SolverType, LowerOrderFinal, UseKarrasSigmas, FinalSigmasType);
}

/// <summary>
/// UniPC (Zhao et al. 2023): a multistep predictor (UniP-p) followed, at the next step, by a corrector (UniC)
/// that re-solves the previous interval with the model output at its end, in λ = log(α/σ) with the B(h)
/// weighting of <c>solver_type</c>. No extra model evaluations: the corrector reuses the next step's output.
/// </summary>
public sealed class UniPCMultistepScheduler : VpMultistepScheduler
{
    private readonly ModelOutputHistory modelOutputs;   // converted outputs of the last solver_order steps, newest last (owned)
    private Tensor? lastSample;                // the (corrected) sample the last predictor started from (owned)
    private int lowerOrderNums;
    private int thisOrder;

    public UniPCMultistepScheduler(UniPCMultistepSchedulerConfig? config = null)
        : base(config ?? new UniPCMultistepSchedulerConfig(), (config ?? new UniPCMultistepSchedulerConfig()).RescaleBetasZeroSnr)
    {
        modelOutputs = new ModelOutputHistory(Config.SolverOrder);
    }

    public override UniPCMultistepSchedulerConfig Config => (UniPCMultistepSchedulerConfig)base.Config;

    protected override bool UseKarrasSigmas => Config.UseKarrasSigmas;

    protected override float FinalSigma(double? lastKarrasSigma, float trainingSigmaMin) =>
        Config.FinalSigmasType == FinalSigmasType.Zero ? 0f : lastKarrasSigma is { } k ? (float)k : trainingSigmaMin;

    protected override void ResetHistory()
    {
        modelOutputs.Clear();
        lastSample?.Dispose();
        lastSample = null;
        lowerOrderNums = 0;
        thisOrder = 0;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        RequireTimesteps();
        int i = EnsureStepIndex(timestep);
        using var scope = DisposeScope.Enter();

        // diffusers: the corrector runs from the second step on, unless disabled for the previous step index or
        // there is no previous predictor (img2img starting at begin_index > 0)
        bool useCorrector = i > 0 && !Config.DisableCorrector.Contains(i - 1) && lastSample is not null;
        // converted with the uncorrected sample, as diffusers converts before correcting
        var converted = ConvertModelOutput(modelOutput, sample, SigmaAt(i));
        var x = useCorrector ? CorrectorUpdate(converted, lastSample!, sample, thisOrder, i) : sample;

        modelOutputs.Push(converted);

        // lower_order_final: min(order, steps left) with no "< 15 steps" condition (unlike DPM-Solver and DEIS)
        int order = Config.LowerOrderFinal ? Math.Min(Config.SolverOrder, Timesteps.Count - i) : Config.SolverOrder;
        thisOrder = Math.Min(order, lowerOrderNums + 1); // warm-up: no more history than steps taken

        lastSample?.Dispose();
        lastSample = x.Alias().DetachFromDisposeScope();
        var prev = PredictorUpdate(x, thisOrder, i).To(x.DType);
        if (lowerOrderNums < Config.SolverOrder) lowerOrderNums++;
        StepIndex = i + 1;
        return new SchedulerStepOutput(scope.Keep(prev), Config.PredictX0 ? scope.Keep(converted.Alias()) : null);
    }

    /// <summary>The quantity UniPC integrates: x̂₀ with predict_x0, else ε̂.</summary>
    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, double sigma)
    {
        var (alpha, sigmaT) = AlphaSigma(sigma);
        if (Config.PredictX0)
        {
            return Config.PredictionType switch
            {
                PredictionType.Epsilon => (sample - sigmaT * modelOutput) / alpha,
                PredictionType.Sample => modelOutput.Alias(),
                _ => alpha * sample - sigmaT * modelOutput,
            };
        }
        return Config.PredictionType switch
        {
            PredictionType.Epsilon => modelOutput.Alias(),
            PredictionType.Sample => (sample - alpha * modelOutput) / sigmaT,
            _ => alpha * modelOutput + sigmaT * sample,
        };
    }

    /// <summary>
    /// The B(h) system of UniPC's eq. for order p: rows R_k = r^(k−1) over the ratios r (the last r = 1), and
    /// b_k = h φ_k(h) k! / B(h) with φ built by the recursion φ_{k+1} = φ_k / hh − 1/(k+1)!; hh = −h for x̂₀.
    /// </summary>
    private (double[,] R, double[] B, double HPhi1, double Bh) Coefficients(double h, IReadOnlyList<double> rks, int order)
    {
        double hh = Config.PredictX0 ? -h : h;
        double hPhi1 = double.ExpM1(hh); // h φ₁(h) = e^h − 1
        double hPhiK = hPhi1 / hh - 1;
        double bh = Config.SolverType == UniPcSolverType.Bh1 ? hh : double.ExpM1(hh);
        var r = new double[order, rks.Count];
        var b = new double[order];
        double factorial = 1;
        for (int k = 1; k <= order; k++)
        {
            for (int j = 0; j < rks.Count; j++) r[k - 1, j] = Math.Pow(rks[j], k - 1);
            b[k - 1] = hPhiK * factorial / bh;
            factorial *= k + 1;
            hPhiK = hPhiK / hh - 1 / factorial;
        }
        return (r, b, hPhi1, bh);
    }

    /// <summary>
    /// The differences D1_k = (m_k − m0)/r_k of the k-th older output and the ratios r_k = (λ_{s_k} − λ_{s0})/h,
    /// s_k = s0 − k (the corrector calls it before this step's output joins the history, with s0 = i − 1).
    /// </summary>
    private (List<double> Rks, List<Tensor> D1s) Differences(Tensor m0, int order, int s0Index, double lambdaS0, double h)
    {
        var rks = new List<double>();
        var d1s = new List<Tensor>();
        for (int k = 1; k < order; k++)
        {
            double rk = (Lambda(SigmaAt(s0Index - k)) - lambdaS0) / h;
            rks.Add(rk);
            d1s.Add((modelOutputs[^(k + 1)]! - m0) / rk);
        }
        rks.Add(1.0);
        return (rks, d1s);
    }

    /// <summary>UniP-p (B(h) version) from σ_i to σ_{i+1}, with the newest outputs including this step's.</summary>
    private Tensor PredictorUpdate(Tensor x, int order, int i)
    {
        double sigmaNext = SigmaAt(i + 1), sigmaNow = SigmaAt(i);
        var (alphaT, sigmaT) = AlphaSigma(sigmaNext);
        var (alphaS0, sigmaS0) = AlphaSigma(sigmaNow);
        double lambdaS0 = Lambda(sigmaNow);
        double h = Lambda(sigmaNext) - lambdaS0;
        var m0 = modelOutputs[^1]!;
        var (rks, d1s) = Differences(m0, order, i, lambdaS0, h);
        var (r, b, hPhi1, bh) = Coefficients(h, rks, order);

        Tensor? predRes = null;
        if (d1s.Count > 0)
        {
            // diffusers: "for order 2, we use a simplified version" ρ = 0.5, else solve the leading (p−1)×(p−1) system
            double[] rhos = order == 2 ? [0.5] : Solve(Leading(r, order - 1), b[..(order - 1)]);
            predRes = Combine(rhos, d1s);
        }
        return Config.PredictX0
            ? Subtract(sigmaT / sigmaS0 * x - alphaT * hPhi1 * m0, alphaT * bh, predRes)
            : Subtract(alphaT / alphaS0 * x - sigmaT * hPhi1 * m0, sigmaT * bh, predRes);
    }

    /// <summary>
    /// UniC-p: re-solves σ_{i−1} → σ_i from the sample before the last predictor, adding this step's output
    /// (<paramref name="modelT"/>) as the newest difference D1_t = m_t − m0 (the history is still the previous step's).
    /// </summary>
    private Tensor CorrectorUpdate(Tensor modelT, Tensor last, Tensor current, int order, int i)
    {
        double sigmaNow = SigmaAt(i), sigmaPrev = SigmaAt(i - 1);
        var (alphaT, sigmaT) = AlphaSigma(sigmaNow);
        var (alphaS0, sigmaS0) = AlphaSigma(sigmaPrev);
        double lambdaS0 = Lambda(sigmaPrev);
        double h = Lambda(sigmaNow) - lambdaS0;
        var m0 = modelOutputs[^1]!;
        var (rks, d1s) = Differences(m0, order, i - 1, lambdaS0, h);
        var (r, b, hPhi1, bh) = Coefficients(h, rks, order);

        // diffusers: "for order 1, we use a simplified version" ρ = 0.5, else solve the full p×p system
        double[] rhos = order == 1 ? [0.5] : Solve(r, b);
        var d1t = modelT - m0;
        var corrRes = d1s.Count > 0 ? Combine(rhos[..^1], d1s) + rhos[^1] * d1t : rhos[^1] * d1t;
        var x = Config.PredictX0
            ? Subtract(sigmaT / sigmaS0 * last - alphaT * hPhi1 * m0, alphaT * bh, corrRes)
            : Subtract(alphaT / alphaS0 * last - sigmaT * hPhi1 * m0, sigmaT * bh, corrRes);
        return x.To(current.DType);
    }

    private static Tensor Subtract(Tensor baseTerm, double weight, Tensor? residual) =>
        residual is null ? baseTerm : baseTerm - weight * residual;

    /// <summary>Σ_k ρ_k D1_k (diffusers' einsum "k,bkc...->bc...").</summary>
    private static Tensor Combine(IReadOnlyList<double> rhos, List<Tensor> d1s)
    {
        var sum = rhos[0] * d1s[0];
        for (int k = 1; k < d1s.Count; k++) sum = sum + rhos[k] * d1s[k];
        return sum;
    }

    private static double[,] Leading(double[,] m, int n)
    {
        var result = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) result[i, j] = m[i, j];
        return result;
    }

    /// <summary>A·x = b by Gaussian elimination with partial pivoting (torch.linalg.solve for the small ρ systems).</summary>
    private static double[] Solve(double[,] a, double[] b)
    {
        int n = b.Length;
        var m = (double[,])a.Clone();
        var x = (double[])b.Clone();
        for (int col = 0; col < n; col++)
        {
            int pivot = col;
            for (int row = col + 1; row < n; row++) if (Math.Abs(m[row, col]) > Math.Abs(m[pivot, col])) pivot = row;
            if (pivot != col)
            {
                for (int j = 0; j < n; j++) (m[col, j], m[pivot, j]) = (m[pivot, j], m[col, j]);
                (x[col], x[pivot]) = (x[pivot], x[col]);
            }
            for (int row = col + 1; row < n; row++)
            {
                double f = m[row, col] / m[col, col];
                for (int j = col; j < n; j++) m[row, j] -= f * m[col, j];
                x[row] -= f * x[col];
            }
        }
        for (int row = n - 1; row >= 0; row--)
        {
            double s = x[row];
            for (int j = row + 1; j < n; j++) s -= m[row, j] * x[j];
            x[row] = s / m[row, row];
        }
        return x;
    }
}

using LatentDiffusion.Torch;
using static LatentDiffusion.Pipeline.Schedulers.VpSigma;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The pieces DPM-Solver's multistep and singlestep schedulers share, as diffusers copies them between the two
/// ("# Copied from … DPMSolverMultistepScheduler"): the conversion of a model output to what the solver integrates,
/// and the updates of the exponential integrator, named for the math (its Taylor expansion, the midpoint rule).
/// </summary>
internal static class DpmSolverUpdates
{
    /// <summary>Whether the algorithm integrates the data prediction x̂₀ (DPM-Solver++) rather than ε̂.</summary>
    public static bool IsDataPrediction(DpmAlgorithmType algorithm) =>
        algorithm is DpmAlgorithmType.DpmSolverPlusPlus or DpmAlgorithmType.SdeDpmSolverPlusPlus;

    /// <summary>
    /// diffusers' clipped_idx = searchsorted(flip(λ_t), lambda_min_clipped) with λ_t = log √ᾱ − log √(1 − ᾱ) in float32: how many
    /// of the noisiest training timesteps have λ below the bound and are cut from the top of the schedule (0 for −∞).
    /// </summary>
    public static int LambdaClippedCount(float[] alphasCumprod, double lambdaMinClipped)
    {
        int clipped = 0;
        if (double.IsNegativeInfinity(lambdaMinClipped)) return clipped;
        var flippedLambda = alphasCumprod.Reverse().Select(a => MathF.Log(MathF.Sqrt(a)) - MathF.Log(MathF.Sqrt(1 - a))).ToArray();
        while (clipped < flippedLambda.Length && flippedLambda[clipped] < lambdaMinClipped) clipped++;
        return clipped;
    }

    /// <summary>The quantity the solver integrates at σ: x̂₀ for DPM-Solver++, ε̂ for DPM-Solver (diffusers' convert_model_output).</summary>
    public static Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, double sigma, DpmAlgorithmType algorithm,
        PredictionType predictionType, bool learnedVariance)
    {
        if (learnedVariance && predictionType == PredictionType.Epsilon)
            modelOutput = modelOutput.Slice(1, 0, 3); // learned variance: the first 3 channels are ε
        var (alpha, sigmaT) = AlphaSigma(sigma);
        if (IsDataPrediction(algorithm))
        {
            return predictionType switch
            {
                PredictionType.Epsilon => (sample - sigmaT * modelOutput) / alpha,
                PredictionType.Sample => modelOutput.Alias(),
                _ => alpha * sample - sigmaT * modelOutput,
            };
        }
        return predictionType switch
        {
            PredictionType.Epsilon => modelOutput.Alias(),
            PredictionType.Sample => (sample - alpha * modelOutput) / sigmaT,
            _ => alpha * modelOutput + sigmaT * sample,
        };
    }

    /// <summary>DPM-Solver-1 (= DDIM) over the interval: the expansion with its first term only.</summary>
    public static Tensor FirstOrderUpdate(DpmAlgorithmType algorithm, DpmInterval step, Tensor x, Tensor d0, Tensor? z) =>
        TaylorUpdate(algorithm, step, x, d0, null, null, z);

    /// <summary>
    /// The second-order update from D0 and D1 = (D(s) − D(s′))/r, r = (λ_s − λ_s′)/h (diffusers' solver_type): "heun" is the
    /// expansion to the first derivative (<see cref="TaylorUpdate"/>), "midpoint" weights D1 with half D0's coefficient.
    /// </summary>
    public static Tensor SecondOrderUpdate(DpmAlgorithmType algorithm, DpmSolverType solverType, DpmInterval step, Tensor x, Tensor d0, Tensor d1, Tensor? z) =>
        solverType == DpmSolverType.Midpoint ? MidpointUpdate(algorithm, step, x, d0, d1, z) : TaylorUpdate(algorithm, step, x, d0, d1, null, z);

    /// <summary>
    /// The exponential integrator from s to t with the integrated quantity expanded in λ around s (Lu et al. 2022, DPM-Solver++
    /// eq. 9, diffusers' first-order, "heun" second-order and third-order updates): D0 its value, D1 and D2 its first and
    /// second differences (null: the expansion stops before them). With φ₁ = e^{−h} − 1, φ₂ = φ₁/h + 1, φ₃ = (φ₁ + h)/h² − ½
    /// (k-diffusion's sample_dpmpp_3m_sde), DPM-Solver++ is x_t = (σ_t/σ_s) x − α_t (φ₁ D0 − φ₂ D1 + φ₃ D2); DPM-Solver the
    /// same in ε̂ with h → −h and σ ↔ α; the SDE forms integrate over 2h and add σ_t √(1 − e^{−2h}) z (ε form: √(e^{2h} − 1)).
    /// The expressions keep diffusers' order of operations, so the float32 results are the same to the bit.
    /// </summary>
    public static Tensor TaylorUpdate(DpmAlgorithmType algorithm, DpmInterval step, Tensor x, Tensor d0, Tensor? d1, Tensor? d2, Tensor? z)
    {
        var (alphaS, sigmaS, alphaT, sigmaT, h) = step;
        Tensor xt;
        switch (algorithm)
        {
            case DpmAlgorithmType.DpmSolverPlusPlus:
                xt = sigmaT / sigmaS * x - alphaT * (Math.Exp(-h) - 1.0) * d0;
                if (d1 is not null) xt = xt + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1;
                if (d2 is not null) xt = xt - alphaT * ((Math.Exp(-h) - 1.0 + h) / (h * h) - 0.5) * d2;
                return xt;
            case DpmAlgorithmType.DpmSolver:
                xt = alphaT / alphaS * x - sigmaT * (Math.Exp(h) - 1.0) * d0;
                if (d1 is not null) xt = xt - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d1;
                if (d2 is not null) xt = xt - sigmaT * ((Math.Exp(h) - 1.0 - h) / (h * h) - 0.5) * d2;
                return xt;
            case DpmAlgorithmType.SdeDpmSolverPlusPlus:
                xt = sigmaT / sigmaS * Math.Exp(-h) * x + alphaT * (1.0 - Math.Exp(-2.0 * h)) * d0;
                if (d1 is not null) xt = xt + alphaT * ((1.0 - Math.Exp(-2.0 * h)) / (-2.0 * h) + 1.0) * d1;
                if (d2 is not null) xt = xt + alphaT * ((1.0 - Math.Exp(-2.0 * h) - 2.0 * h) / (2.0 * h * (2.0 * h)) - 0.5) * d2;
                return xt + SdeNoise(algorithm, step, z);
            default:
                if (d2 is not null) throw new ArgumentException("sde-dpmsolver has no third-order update", nameof(d2));
                xt = alphaT / alphaS * x - 2.0 * (sigmaT * (Math.Exp(h) - 1.0)) * d0;
                if (d1 is not null) xt = xt - 2.0 * (sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0)) * d1;
                return xt + SdeNoise(algorithm, step, z);
        }
    }

    /// <summary>
    /// diffusers' "midpoint" second-order update: the first-order update plus D1 with half the coefficient of D0
    /// (x_t = (σ_t/σ_s) x − α_t φ₁ (D0 + ½ D1) for DPM-Solver++).
    /// </summary>
    public static Tensor MidpointUpdate(DpmAlgorithmType algorithm, DpmInterval step, Tensor x, Tensor d0, Tensor d1, Tensor? z)
    {
        var (alphaS, sigmaS, alphaT, sigmaT, h) = step;
        double c;
        switch (algorithm)
        {
            case DpmAlgorithmType.DpmSolverPlusPlus:
                c = alphaT * (Math.Exp(-h) - 1.0);
                return sigmaT / sigmaS * x - c * d0 - 0.5 * c * d1;
            case DpmAlgorithmType.DpmSolver:
                c = sigmaT * (Math.Exp(h) - 1.0);
                return alphaT / alphaS * x - c * d0 - 0.5 * c * d1;
            case DpmAlgorithmType.SdeDpmSolverPlusPlus:
                c = alphaT * (1 - Math.Exp(-2.0 * h));
                return sigmaT / sigmaS * Math.Exp(-h) * x + c * d0 + 0.5 * c * d1 + SdeNoise(algorithm, step, z);
            default:
                c = sigmaT * (Math.Exp(h) - 1.0);
                return alphaT / alphaS * x - 2.0 * c * d0 - c * d1 + SdeNoise(algorithm, step, z);
        }
    }

    /// <summary>The SDE solvers' fresh noise over the interval: σ_t √(1 − e^{−2h}) z (data prediction) or σ_t √(e^{2h} − 1) z (ε).</summary>
    private static Tensor SdeNoise(DpmAlgorithmType algorithm, DpmInterval step, Tensor? z)
    {
        if (z is null) throw new ArgumentNullException(nameof(z), "the SDE solvers need a noise tensor");
        return algorithm == DpmAlgorithmType.SdeDpmSolverPlusPlus
            ? step.SigmaT * Math.Sqrt(1.0 - Math.Exp(-2 * step.H)) * z
            : step.SigmaT * Math.Sqrt(Math.Exp(2 * step.H) - 1.0) * z;
    }
}

/// <summary>
/// One solver interval from σ_s to σ_t (variance-exploding σ): the variance-preserving α and σ at both ends
/// (<see cref="VpSigma.AlphaSigma"/>) and the step in log-SNR, h = λ_t − λ_s.
/// </summary>
internal readonly record struct DpmInterval(double AlphaS, double SigmaS, double AlphaT, double SigmaT, double H)
{
    public static DpmInterval Between(double sigmaFrom, double sigmaTo)
    {
        var (alphaS, sigmaS) = AlphaSigma(sigmaFrom);
        var (alphaT, sigmaT) = AlphaSigma(sigmaTo);
        return new DpmInterval(alphaS, sigmaS, alphaT, sigmaT, Lambda(sigmaTo) - Lambda(sigmaFrom));
    }
}

using LatentDiffusion.Torch;
using static LatentDiffusion.Pipeline.Schedulers.VpSigma;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The pieces DPM-Solver's multistep and singlestep schedulers share, as diffusers copies them between the two
/// ("# Copied from … DPMSolverMultistepScheduler"): the conversion of a model output to what the solver integrates,
/// and the first-order update.
/// </summary>
internal static class DpmSolverUpdates
{
    /// <summary>Whether the algorithm integrates the data prediction x̂₀ (DPM-Solver++) rather than ε̂.</summary>
    public static bool IsDataPrediction(DpmAlgorithmType algorithm) =>
        algorithm is DpmAlgorithmType.DpmSolverPlusPlus or DpmAlgorithmType.SdeDpmSolverPlusPlus;

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

    /// <summary>DPM-Solver-1 (= DDIM) from σ_s to σ_t, h = λ_t − λ_s; <paramref name="z"/> is the SDE variants' noise.</summary>
    public static Tensor FirstOrderUpdate(DpmAlgorithmType algorithm, double sigmaS, double sigmaTarget, Tensor m0, Tensor x, Tensor? z)
    {
        var (alphaT, sigmaT) = AlphaSigma(sigmaTarget);
        var (alphaS, sigmaS0) = AlphaSigma(sigmaS);
        double h = Lambda(sigmaTarget) - Lambda(sigmaS);
        return algorithm switch
        {
            // x_t = (σ_t/σ_s) x − α_t (e^{−h} − 1) x̂₀
            DpmAlgorithmType.DpmSolverPlusPlus => sigmaT / sigmaS0 * x - alphaT * (Math.Exp(-h) - 1.0) * m0,
            // x_t = (α_t/α_s) x − σ_t (e^{h} − 1) ε̂
            DpmAlgorithmType.DpmSolver => alphaT / alphaS * x - sigmaT * (Math.Exp(h) - 1.0) * m0,
            DpmAlgorithmType.SdeDpmSolverPlusPlus =>
                sigmaT / sigmaS0 * Math.Exp(-h) * x + alphaT * (1 - Math.Exp(-2.0 * h)) * m0 + sigmaT * Math.Sqrt(1.0 - Math.Exp(-2 * h)) * z!,
            _ => alphaT / alphaS * x - 2.0 * (sigmaT * (Math.Exp(h) - 1.0)) * m0 + sigmaT * Math.Sqrt(Math.Exp(2 * h) - 1.0) * z!,
        };
    }
}

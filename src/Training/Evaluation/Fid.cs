namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// The Fréchet distance between two Gaussians fitted to feature vectors (Heusel et al. 2017):
/// <code>FID = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)</code>
/// Σ₁Σ₂ is not symmetric, but it is similar to the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½ (conjugate by
/// Σ₁^½), so Tr (Σ₁Σ₂)^½ = Tr (Σ₁^½ Σ₂ Σ₁^½)^½ = Σ √λᵢ over that matrix's eigenvalues, which a
/// symmetric eigensolver finds stably even when Σ₁ is singular (fewer samples than dimensions).
/// Here the features are a classifier's penultimate layer rather than Inception's, so the numbers
/// compare models judged by the same classifier, not published Inception FIDs.
/// </summary>
public static class Fid
{
    public static double Compute(FeatureStatistics first, FeatureStatistics second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        return Compute(first.Mean, first.Covariance, second.Mean, second.Covariance);
    }

    public static double Compute(double[] mu1, double[,] sigma1, double[] mu2, double[,] sigma2)
    {
        var d = mu1.Length;
        if (mu2.Length != d || sigma1.GetLength(0) != d || sigma1.GetLength(1) != d || sigma2.GetLength(0) != d || sigma2.GetLength(1) != d)
            throw new ArgumentException($"statistics disagree in dimension: μ₁ {mu1.Length}, Σ₁ {sigma1.GetLength(0)}×{sigma1.GetLength(1)}, μ₂ {mu2.Length}, Σ₂ {sigma2.GetLength(0)}×{sigma2.GetLength(1)}");

        double meanTerm = 0;
        for (int i = 0; i < d; i++) meanTerm += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);

        var root = SymmetricEigen.SqrtPsd(sigma1);
        var inner = SymmetricEigen.Multiply(SymmetricEigen.Multiply(root, sigma2), root);
        var traceCovMean = SymmetricEigen.TraceSqrtPsd(inner);

        double traces = 0;
        for (int i = 0; i < d; i++) traces += sigma1[i, i] + sigma2[i, i];
        // A distance: equal statistics give 0 up to rounding, which must not come out as −1e-13.
        return Math.Max(0, meanTerm + traces - 2 * traceCovMean);
    }
}

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The variance-preserving quantities of a variance-exploding σ that the DPM-Solver family (DPM-Solver, DPM-Solver++,
/// UniPC, DEIS) integrates in: diffusers' <c>_sigma_to_alpha_sigma_t</c> and λ = log α_t − log σ_t.
/// </summary>
internal static class VpSigma
{
    /// <summary>α_t = 1/√(σ² + 1), σ_t = σ α_t.</summary>
    public static (double Alpha, double Sigma) AlphaSigma(double sigma)
    {
        double alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        return (alpha, sigma * alpha);
    }

    /// <summary>λ = log α_t − log σ_t (+∞ at σ = 0, as torch.log(0) gives in diffusers).</summary>
    public static double Lambda(double sigma)
    {
        var (alpha, s) = AlphaSigma(sigma);
        return Math.Log(alpha) - Math.Log(s);
    }
}

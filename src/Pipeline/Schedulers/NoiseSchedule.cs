using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The training noise schedule shared by all schedulers: betas β_t and ᾱ_t = ∏_{s≤t} (1 − β_s).
/// Computed with the same float32 libtorch operations diffusers uses (linspace, pow, cumprod), so the
/// tables match the reference bit for bit; kept on the host as float arrays.
/// </summary>
internal static class NoiseSchedule
{
    public static float[] Betas(SchedulerConfig config, bool rescaleZeroTerminalSnr)
    {
        using var scope = DisposeScope.Enter();
        int n = config.NumTrainTimesteps;
        Tensor betas;
        if (config.TrainedBetas is { } trained)
        {
            betas = Tensor.From(trained.Select(b => (float)b).ToArray(), n);
        }
        else
        {
            betas = config.BetaSchedule switch
            {
                // β_t evenly spaced in [β_start, β_end]
                BetaSchedule.Linear => Tensors.Linspace(config.BetaStart, config.BetaEnd, n),
                // √β_t evenly spaced (Stable Diffusion's schedule)
                BetaSchedule.ScaledLinear => Tensors.Linspace(Math.Sqrt(config.BetaStart), Math.Sqrt(config.BetaEnd), n).Pow(2),
                BetaSchedule.SquaredCosCapV2 => Tensor.From(CosineBetas(n), n),
                // β_t = σ(x) (β_end − β_start) + β_start, x evenly spaced in [−6, 6]
                BetaSchedule.Sigmoid => Tensors.Linspace(-6, 6, n).Sigmoid() * (config.BetaEnd - config.BetaStart) + config.BetaStart,
                _ => throw new SchedulerConfigException("beta_schedule", $"'{config.BetaSchedule}' is not implemented"),
            };
        }
        if (rescaleZeroTerminalSnr) betas = RescaleZeroTerminalSnr(betas);
        return betas.ToArray<float>();
    }

    /// <summary>ᾱ_t = ∏_{s≤t} (1 − β_s), float32 cumulative product as torch computes it.</summary>
    public static float[] AlphasCumprod(float[] betas)
    {
        using var scope = DisposeScope.Enter();
        using var b = Tensor.From(betas, betas.Length);
        return (1.0 - b).CumProd(0).ToArray<float>();
    }

    /// <summary>
    /// Improved DDPM's cosine schedule: ᾱ(t) = cos²((t + 0.008)/1.008 · π/2),
    /// β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999), computed in double and stored as float32.
    /// </summary>
    private static float[] CosineBetas(int n)
    {
        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        var betas = new float[n];
        for (int i = 0; i < n; i++)
            betas[i] = (float)Math.Min(1 - AlphaBar((i + 1) / (double)n) / AlphaBar(i / (double)n), 0.999);
        return betas;
    }

    /// <summary>
    /// "Common Diffusion Noise Schedules and Sample Steps are Flawed" (Lin et al. 2023), algorithm 1:
    /// shift and scale √ᾱ so that √ᾱ_T = 0 while √ᾱ_0 is unchanged, then recover the betas.
    /// </summary>
    private static Tensor RescaleZeroTerminalSnr(Tensor betas)
    {
        var alphasBarSqrt = (1.0 - betas).CumProd(0).Sqrt();
        var first = alphasBarSqrt[0].Item();
        var last = alphasBarSqrt[-1 + alphasBarSqrt.Size(0)].Item();
        // Done with float32 tensor arithmetic in the reference: (x − last) · (first / (first − last))
        var f0 = Tensors.Scalar(first);
        var fT = Tensors.Scalar(last);
        var shifted = (alphasBarSqrt - fT) * (f0 / (f0 - fT));
        var alphasBar = shifted.Square();
        var ratio = alphasBar.Slice(0, 1, long.MaxValue) / alphasBar.Slice(0, 0, alphasBar.Size(0) - 1);
        var alphas = Tensor.Cat([alphasBar.Slice(0, 0, 1), ratio]);
        return 1.0 - alphas;
    }
}

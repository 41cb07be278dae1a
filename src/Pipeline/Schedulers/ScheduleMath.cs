namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The NumPy operations diffusers builds its timestep and sigma schedules with, reproduced with the
/// same float64 arithmetic (so rounding of half-integers, interpolation and spacing agree exactly).
/// </summary>
internal static class ScheduleMath
{
    /// <summary>np.linspace(start, stop, num, endpoint): i·step + start, the last value set to stop.</summary>
    public static double[] Linspace(double start, double stop, int num, bool endpoint = true)
    {
        var result = new double[num];
        if (num == 0) return result;
        int div = endpoint ? num - 1 : num;
        double step = div > 0 ? (stop - start) / div : 0;
        for (int i = 0; i < num; i++) result[i] = i * step + start;
        if (endpoint && num > 1) result[^1] = stop;
        return result;
    }

    /// <summary>np.arange(start, stop, step) for a float step: ⌈(stop − start)/step⌉ values start + i·step.</summary>
    public static double[] Arange(double start, double stop, double step)
    {
        int n = Math.Max(0, (int)Math.Ceiling((stop - start) / step));
        var result = new double[n];
        for (int i = 0; i < n; i++) result[i] = start + i * step;
        return result;
    }

    /// <summary>np.round: half to even.</summary>
    public static double Round(double x) => Math.Round(x, MidpointRounding.ToEven);

    /// <summary>
    /// np.interp(x, 0..fp.Length−1, fp): linear interpolation in a table sampled at the integers,
    /// clamped at both ends; slope·(x − x_j) + fp_j as NumPy computes it.
    /// </summary>
    public static double Interp(double x, ReadOnlySpan<float> fp)
    {
        int last = fp.Length - 1;
        if (x <= 0) return fp[0];
        if (x >= last) return fp[last];
        int j = (int)Math.Floor(x);
        if (j == x) return fp[j];
        double slope = (double)fp[j + 1] - fp[j]; // over a unit interval
        return slope * (x - j) + fp[j];
    }

    /// <summary>σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, in float32 as torch computes it.</summary>
    public static float[] TrainingSigmas(float[] alphasCumprod)
    {
        var sigmas = new float[alphasCumprod.Length];
        for (int i = 0; i < sigmas.Length; i++) sigmas[i] = MathF.Sqrt((1f - alphasCumprod[i]) / alphasCumprod[i]);
        return sigmas;
    }

    /// <summary>np.log of a float32 array (float32 results).</summary>
    public static float[] Log(float[] values) => values.Select(v => (float)Math.Log(v)).ToArray();

    /// <summary>
    /// diffusers' _sigma_to_t: the (fractional) training timestep whose σ equals <paramref name="sigma"/>,
    /// by linear interpolation of log σ between the two neighbouring training sigmas.
    /// </summary>
    public static double SigmaToT(double sigma, float[] logSigmas)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        // low = the last index whose log σ is ≤ log_sigma (0 when none), at most len − 2
        int low = 0;
        for (int i = 0; i < logSigmas.Length; i++) if (logSigma - logSigmas[i] >= 0) low = i;
        low = Math.Min(low, logSigmas.Length - 2);
        double lo = logSigmas[low], hi = logSigmas[low + 1];
        double w = Math.Clamp((lo - logSigma) / (lo - hi), 0, 1);
        return (1 - w) * low + w * (low + 1);
    }

    /// <summary>
    /// Karras et al. (2022) eq. 5: σ_i = (σ_max^{1/ρ} + i/(n−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7.
    /// </summary>
    public static double[] KarrasSigmas(double sigmaMin, double sigmaMax, int n, double rho = 7.0)
    {
        var ramp = Linspace(0, 1, n);
        double minInvRho = Math.Pow(sigmaMin, 1 / rho), maxInvRho = Math.Pow(sigmaMax, 1 / rho);
        return ramp.Select(r => Math.Pow(maxInvRho + r * (minInvRho - maxInvRho), rho)).ToArray();
    }

    /// <summary>The leading/linspace/trailing spacings shared by DDPM, DDIM and the sigma schedulers (descending).</summary>
    public static double[] SpacedTimesteps(TimestepSpacing spacing, int trainSteps, int steps, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                // linspace(0, T−1, n), rounded (for integer schedulers) by the caller, descending
                return Linspace(0, trainSteps - 1, steps).Reverse().ToArray();
            case TimestepSpacing.Leading:
            {
                // i · (T // n) + steps_offset, descending
                int ratio = trainSteps / steps;
                return Enumerable.Range(0, steps).Select(i => (double)(i * ratio + stepsOffset)).Reverse().ToArray();
            }
            case TimestepSpacing.Trailing:
            {
                // round(arange(T, 0, −T/n)) − 1
                double ratio = trainSteps / (double)steps;
                return Arange(trainSteps, 0, -ratio).Select(t => Round(t) - 1).ToArray();
            }
            default:
                throw new SchedulerConfigException("timestep_spacing", $"unsupported value '{spacing}'");
        }
    }
}

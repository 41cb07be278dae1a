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

    /// <summary>
    /// diffusers' _convert_to_exponential (≥ 0.31, use_exponential_sigmas): σ evenly spaced in log σ,
    /// exp(linspace(ln σ_max, ln σ_min, n)), descending.
    /// </summary>
    public static double[] ExponentialSigmas(double sigmaMin, double sigmaMax, int n) =>
        Linspace(Math.Log(sigmaMax), Math.Log(sigmaMin), n).Select(Math.Exp).ToArray();

    /// <summary>
    /// diffusers' _convert_to_beta (≥ 0.31, use_beta_sigmas; Lee et al. 2024, "Beta sampling is all you need"):
    /// σ_i = σ_min + ppf(1 − i/(n−1); α, β)·(σ_max − σ_min) with α = β = 0.6, which spends more steps at
    /// both ends of the schedule. diffusers calls scipy.stats.beta.ppf; <see cref="BetaPpf"/> inverts the
    /// same regularised incomplete beta function.
    /// </summary>
    public static double[] BetaSigmas(double sigmaMin, double sigmaMax, int n, double alpha = 0.6, double beta = 0.6) =>
        Linspace(0, 1, n).Select(r => sigmaMin + BetaPpf(1 - r, alpha, beta) * (sigmaMax - sigmaMin)).ToArray();

    /// <summary>The quantile function of Beta(a, b): the x with I_x(a, b) = p, by bisection to double precision.</summary>
    public static double BetaPpf(double p, double a, double b)
    {
        if (p <= 0) return 0;
        if (p >= 1) return 1;
        double lo = 0, hi = 1;
        for (int i = 0; i < 200 && hi - lo > 1e-17; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (RegularizedIncompleteBeta(mid, a, b) < p) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    /// <summary>I_x(a, b) by Lentz's continued fraction (Numerical Recipes' betai), using the symmetry for x past the mean.</summary>
    public static double RegularizedIncompleteBeta(double x, double a, double b)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double front = Math.Exp(LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x));
        return x < (a + 1) / (a + b + 2)
            ? front * BetaContinuedFraction(x, a, b) / a
            : 1 - front * BetaContinuedFraction(1 - x, b, a) / b;
    }

    private static double BetaContinuedFraction(double x, double a, double b)
    {
        const double Tiny = 1e-300;
        double qab = a + b, qap = a + 1, qam = a - 1;
        double c = 1, d = 1 - qab * x / qap;
        if (Math.Abs(d) < Tiny) d = Tiny;
        d = 1 / d;
        double h = d;
        for (int m = 1; m <= 300; m++)
        {
            int m2 = 2 * m;
            double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
            d = 1 + aa * d; if (Math.Abs(d) < Tiny) d = Tiny;
            c = 1 + aa / c; if (Math.Abs(c) < Tiny) c = Tiny;
            d = 1 / d; h *= d * c;
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
            d = 1 + aa * d; if (Math.Abs(d) < Tiny) d = Tiny;
            c = 1 + aa / c; if (Math.Abs(c) < Tiny) c = Tiny;
            d = 1 / d;
            double del = d * c;
            h *= del;
            if (Math.Abs(del - 1) < 1e-16) break;
        }
        return h;
    }

    // Lanczos approximation (g = 7, 9 terms): ln Γ(x) to ~1e-15 relative for x > 0.
    private static readonly double[] LanczosCoefficients =
    [
        0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
        12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
    ];

    private static double LogGamma(double x)
    {
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        x -= 1;
        double sum = LanczosCoefficients[0];
        for (int i = 1; i < LanczosCoefficients.Length; i++) sum += LanczosCoefficients[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }

    /// <summary>
    /// The σ of a schedule type that replaces the model's spaced sigmas (Karras, exponential or beta), descending;
    /// null for the model's own. <paramref name="sigmaMin"/>/<paramref name="sigmaMax"/> bound it as diffusers does.
    /// </summary>
    public static double[]? ConvertedSigmas(bool karras, bool exponential, bool beta, double sigmaMin, double sigmaMax, int n) =>
        karras ? KarrasSigmas(sigmaMin, sigmaMax, n)
        : exponential ? ExponentialSigmas(sigmaMin, sigmaMax, n)
        : beta ? BetaSigmas(sigmaMin, sigmaMax, n)
        : null;

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
            case TimestepSpacing.Simple:
                // A1111's simple_scheduler: sigmas[-(1 + int(i · T/n))] of the T training sigmas
                return Enumerable.Range(0, steps).Select(i => (double)(trainSteps - 1 - (int)(i * ((double)trainSteps / steps)))).ToArray();
            default:
                throw new SchedulerConfigException("timestep_spacing", $"unsupported value '{spacing}'");
        }
    }
}

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// The table layouts of diffusers' second-order sigma schedulers (Heun, KDPM2, KDPM2 ancestral), which call the
/// model twice per σ interval and so list every interval's values twice, and the float32 arithmetic they build
/// their interpolated sigmas and timesteps with.
/// </summary>
internal static class SecondOrderSchedule
{
    /// <summary>torch.cat([x[:1], x[1:-1].repeat_interleave(2), x[-1:]]): [x₀, x₁, x₁, …, x_{n−1}, x_{n−1}, x_n] (Heun's σ).</summary>
    public static float[] RepeatInterior(float[] x)
    {
        var result = new List<float>(2 * x.Length) { x[0] };
        for (int i = 1; i < x.Length - 1; i++) result.AddRange([x[i], x[i]]);
        if (x.Length > 1) result.Add(x[^1]);
        return result.ToArray();
    }

    /// <summary>torch.cat([x[:1], x[1:].repeat_interleave(2)]): [x₀, x₁, x₁, …, x_n, x_n] (Heun's timesteps).</summary>
    public static double[] RepeatAfterFirst(double[] x)
    {
        var result = new List<double>(2 * x.Length) { x[0] };
        for (int i = 1; i < x.Length; i++) result.AddRange([x[i], x[i]]);
        return result.ToArray();
    }

    /// <summary>
    /// torch.cat([x[:1], x[1:].repeat_interleave(2), x[-1:]]): [x₀, x₁, x₁, …, x_n, x_n, x_n] (KDPM2's σ tables: entry i
    /// is read at step index i, which counts model calls).
    /// </summary>
    public static float[] RepeatAfterFirstThenLast(float[] x)
    {
        var result = new List<float>(2 * x.Length + 1) { x[0] };
        for (int i = 1; i < x.Length; i++) result.AddRange([x[i], x[i]]);
        result.Add(x[^1]);
        return result.ToArray();
    }

    /// <summary>
    /// torch.cat([t[:1], torch.stack((interpolated, t[1:]), -1).flatten()]): the first timestep, then each interval's
    /// interpolated (midpoint) timestep before the timestep it ends at.
    /// </summary>
    public static double[] InterleaveMidpoints(double[] timesteps, IReadOnlyList<double> midpoints)
    {
        var result = new List<double>(2 * timesteps.Length) { timesteps[0] };
        for (int i = 1; i < timesteps.Length; i++) result.AddRange([midpoints[i - 1], timesteps[i]]);
        return result.ToArray();
    }

    /// <summary>
    /// a.log().lerp(b.log(), 0.5).exp() in float32: the geometric mean √(a b), with torch's lerp, which for weight ≥ ½
    /// computes end − (end − start)·(1 − w); so √(0 · b) is 0 but √(a · 0) is NaN, as in diffusers (never read there).
    /// </summary>
    public static float LogMidpoint(float a, float b)
    {
        float start = MathF.Log(a), end = MathF.Log(b);
        return MathF.Exp(end - (end - start) * 0.5f);
    }

    /// <summary>
    /// diffusers' _sigma_to_t as KDPM2 calls it for the interpolated sigmas: on torch float32 tensors (sigmas_interpol and
    /// self.log_sigmas), so in float32 throughout, unlike the float64 NumPy path of <see cref="ScheduleMath.SigmaToT"/>.
    /// </summary>
    public static float SigmaToTFloat32(float sigma, float[] logSigmas)
    {
        float logSigma = MathF.Log(MathF.Max(sigma, 1e-10f));
        // low = the last index whose log σ is ≤ log_sigma (0 when none: cumsum(dists ≥ 0).argmax()), at most len − 2
        int low = 0;
        for (int i = 0; i < logSigmas.Length; i++) if (logSigma - logSigmas[i] >= 0) low = i;
        low = Math.Min(low, logSigmas.Length - 2);
        float lo = logSigmas[low], hi = logSigmas[low + 1];
        float w = Math.Clamp((lo - logSigma) / (lo - hi), 0f, 1f);
        return (1 - w) * low + w * (low + 1);
    }
}

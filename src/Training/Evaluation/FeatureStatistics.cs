using System.Globalization;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// Mean μ and unbiased covariance Σ = Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ / (N − 1) of feature vectors (as numpy's
/// <c>np.cov(rowvar=False)</c>, which FID implementations use), in float64.
/// </summary>
public sealed record FeatureStatistics(double[] Mean, double[,] Covariance, long Count)
{
    public int Dimension => Mean.Length;

    /// <summary>Statistics of the rows of <paramref name="features"/> [N, D] (any floating dtype).</summary>
    public static FeatureStatistics FromFeatures(Tensor features)
    {
        var accumulator = new FeatureAccumulator();
        accumulator.Add(features);
        return accumulator.ToStatistics();
    }

    /// <summary>Statistics of the rows of a row-major [N, D] array.</summary>
    public static FeatureStatistics FromFeatures(ReadOnlySpan<double> rows, int dimension)
    {
        var accumulator = new FeatureAccumulator();
        accumulator.Add(rows, dimension);
        return accumulator.ToStatistics();
    }

    /// <summary>Writes "mu" [D] and "sigma" [D, D] as float64 safetensors (the count goes in the metadata).</summary>
    public void Save(string path)
    {
        using var scope = DisposeScope.Enter();
        var d = Dimension;
        var sigma = new double[d * d];
        Buffer.BlockCopy(Covariance, 0, sigma, 0, sigma.Length * sizeof(double));
        SafeTensorsFile.Save(path,
            [new("mu", Tensor.From(Mean, d)), new("sigma", Tensor.From(sigma, d, d))],
            new Dictionary<string, string> { ["count"] = Count.ToString(CultureInfo.InvariantCulture), ["format"] = "feature statistics: mu, sigma (unbiased)" });
    }

    public static FeatureStatistics Load(string path)
    {
        using var scope = DisposeScope.Enter();
        using var file = SafeTensorsFile.Open(path);
        if (!file.Contains("mu") || !file.Contains("sigma"))
            throw new InvalidDataException($"{path}: feature statistics need tensors 'mu' and 'sigma'");
        var mu = file.Load("mu", DType.Float64);
        var sigma = file.Load("sigma", DType.Float64);
        var d = mu.NumEl;
        if (mu.Dim != 1 || !sigma.Shape.SequenceEqual([d, d]))
            throw new InvalidDataException($"{path}: mu is [{string.Join(", ", mu.Shape)}] and sigma [{string.Join(", ", sigma.Shape)}]; expected [D] and [D, D]");
        var covariance = new double[d, d];
        Buffer.BlockCopy(sigma.ToArray<double>(), 0, covariance, 0, (int)(d * d * sizeof(double)));
        var count = file.Metadata.TryGetValue("count", out var c) && long.TryParse(c, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
        return new FeatureStatistics(mu.ToArray<double>(), covariance, count);
    }
}

/// <summary>
/// Accumulates feature statistics batch by batch in float64 without keeping the features. Batches
/// are merged with Chan et al.'s pairwise update, which avoids the cancellation of Σxxᵀ − Nμμᵀ:
/// with δ = μ_b − μ_a, n = n_a + n_b: μ = μ_a + δ·n_b/n, M = M_a + M_b + δδᵀ·n_a·n_b/n,
/// where M is the sum of centred outer products; Σ = M / (n − 1).
/// </summary>
public sealed class FeatureAccumulator
{
    private double[]? mean;
    private double[]? m2; // row-major D×D
    private long count;

    public long Count => count;

    /// <summary>Adds the rows of <paramref name="features"/> [N, D] (or [N, D, 1, 1]).</summary>
    public void Add(Tensor features)
    {
        using var scope = DisposeScope.Enter();
        var n = features.Size(0);
        var flat = features.Reshape(n, -1).To(Device.CPU, DType.Float64).Contiguous();
        Add(flat.ToArray<double>(), (int)flat.Size(1));
    }

    public void Add(ReadOnlySpan<double> rows, int dimension)
    {
        if (dimension < 1) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "feature dimension must be positive");
        if (rows.Length % dimension != 0) throw new ArgumentException($"{rows.Length} values are not whole rows of {dimension}");
        if (mean is not null && mean.Length != dimension)
            throw new ArgumentException($"features have {dimension} dimensions but earlier batches had {mean.Length}");
        var nb = rows.Length / dimension;
        if (nb == 0) return;
        foreach (var x in rows)
            if (!double.IsFinite(x)) throw new ArgumentException("features contain NaN or infinity (did the model diverge?)");

        var d = dimension;
        var mb = new double[d];
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < d; j++) mb[j] += rows[i * d + j];
        for (int j = 0; j < d; j++) mb[j] /= nb;
        var m2b = new double[d * d];
        var centred = new double[d];
        for (int i = 0; i < nb; i++)
        {
            for (int j = 0; j < d; j++) centred[j] = rows[i * d + j] - mb[j];
            for (int j = 0; j < d; j++)
            {
                var cj = centred[j];
                if (cj == 0) continue;
                var row = j * d;
                for (int k = j; k < d; k++) m2b[row + k] += cj * centred[k];
            }
        }
        for (int j = 0; j < d; j++)
            for (int k = 0; k < j; k++) m2b[j * d + k] = m2b[k * d + j];

        if (mean is null || m2 is null)
        {
            mean = mb;
            m2 = m2b;
            count = nb;
            return;
        }
        var na = count;
        var total = na + nb;
        var delta = new double[d];
        for (int j = 0; j < d; j++) delta[j] = mb[j] - mean[j];
        var w = (double)na * nb / total;
        for (int j = 0; j < d; j++)
        {
            mean[j] += delta[j] * nb / total;
            for (int k = 0; k < d; k++) m2[j * d + k] += m2b[j * d + k] + delta[j] * delta[k] * w;
        }
        count = total;
    }

    public FeatureStatistics ToStatistics()
    {
        if (mean is null || m2 is null || count < 2)
            throw new InvalidOperationException($"feature statistics need at least 2 samples, not {count}");
        var d = mean.Length;
        var covariance = new double[d, d];
        for (int j = 0; j < d; j++)
            for (int k = 0; k < d; k++) covariance[j, k] = m2[j * d + k] / (count - 1);
        return new FeatureStatistics((double[])mean.Clone(), covariance, count);
    }
}

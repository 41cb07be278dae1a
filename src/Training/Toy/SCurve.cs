using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Toy;

/// <summary>
/// The S-curve of scikit-learn's make_s_curve, reduced to the plane as in the toy write-up:
/// u ~ U(0, 1), t = 3π(u − 0.5), x = sin t, z = sign(t)(cos t − 1), plus N(0, noise²) on each
/// coordinate, keeping (x, z) and multiplying by <c>scale</c> (the write-up divides by 10).
/// </summary>
public static class SCurve
{
    /// <summary>[n, 2] float32 points.</summary>
    public static Tensor Sample(int count, double noise = 0.1, double scale = 0.1, ulong seed = 0)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "the number of points must be positive");
        using var scope = DisposeScope.Enter();
        using var g = new Generator(seed);
        var t = (Tensors.Rand([count], g, DType.Float64) - 0.5) * (3 * Math.PI);
        var x = t.Sin();
        var z = t.Sign() * (t.Cos() - 1);
        var points = Tensor.Stack([x, z], 1);
        if (noise > 0) points = points + Tensors.Randn([count, 2], g, DType.Float64) * noise;
        return scope.Keep((points * scale).To(DType.Float32));
    }

    /// <summary>
    /// Mean Euclidean distance from each of <paramref name="points"/> to its nearest neighbour in
    /// <paramref name="reference"/> (both [n, 2]): how far samples lie from the data.
    /// </summary>
    public static double MeanNearestDistance(Tensor points, Tensor reference) => NearestDistances(points, reference).Average();

    /// <summary>The distance from each of <paramref name="points"/> to its nearest neighbour in <paramref name="reference"/>.</summary>
    public static double[] NearestDistances(Tensor points, Tensor reference)
    {
        var p = points.To(DType.Float32).Contiguous();
        var r = reference.To(DType.Float32).Contiguous();
        float[] a, b;
        try
        {
            a = p.ToArray<float>();
            b = r.ToArray<float>();
        }
        finally
        {
            p.Dispose();
            r.Dispose();
        }
        int n = a.Length / 2, m = b.Length / 2;
        var nearest = new double[n];
        Parallel.For(0, n, i =>
        {
            float ax = a[2 * i], ay = a[2 * i + 1], best = float.PositiveInfinity;
            for (int j = 0; j < m; j++)
            {
                float dx = ax - b[2 * j], dy = ay - b[2 * j + 1];
                var d = dx * dx + dy * dy;
                if (d < best) best = d;
            }
            nearest[i] = Math.Sqrt(best);
        });
        return nearest;
    }
}

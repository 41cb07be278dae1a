namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// Eigendecomposition of a real symmetric matrix, A = V diag(λ) Vᵀ, in float64, by the cyclic
/// Jacobi method: each rotation J(p, q, φ) zeroes A[p,q] and A ← Jᵀ A J; the sum of squares of the
/// off-diagonal entries falls quadratically once small, and the eigenvectors are the product of the
/// rotations. O(n³) per sweep and some ten sweeps: well under a second for the 128×128 covariances
/// of the judges, and accurate to rounding even for singular or ill-conditioned matrices (which is
/// why FID uses it rather than a non-symmetric square root).
/// </summary>
public static class SymmetricEigen
{
    private const int MaxSweeps = 100;

    /// <summary>Eigenvalues (ascending) and eigenvectors (the columns of Vectors, in the same order).</summary>
    public static (double[] Values, double[,] Vectors) Decompose(double[,] matrix)
    {
        var n = CheckSquare(matrix);
        // Work on the symmetric part: covariances computed in floating point are symmetric only to rounding.
        var a = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                a[i, j] = 0.5 * (matrix[i, j] + matrix[j, i]);
        var v = Identity(n);

        double total = 0;
        foreach (var x in a) total += x * x;
        for (int sweep = 0; sweep < MaxSweeps; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++)
                for (int q = p + 1; q < n; q++)
                    off += a[p, q] * a[p, q];
            if (off <= 1e-30 * total || off == 0) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                    Rotate(a, v, p, q, n, sweep);
        }

        var values = new double[n];
        for (int i = 0; i < n; i++) values[i] = a[i, i];
        var order = Enumerable.Range(0, n).OrderBy(i => values[i]).ToArray();
        var sortedValues = new double[n];
        var sortedVectors = new double[n, n];
        for (int k = 0; k < n; k++)
        {
            sortedValues[k] = values[order[k]];
            for (int i = 0; i < n; i++) sortedVectors[i, k] = v[i, order[k]];
        }
        return (sortedValues, sortedVectors);
    }

    /// <summary>
    /// One Jacobi rotation on (p, q). With θ = (a_qq − a_pp) / (2 a_pq), t = tan φ is the smaller root of
    /// t² + 2θt − 1 = 0, i.e. t = sign(θ) / (|θ| + √(θ² + 1)); c = 1/√(t² + 1), s = t·c. Then
    /// (Jᵀ A J)[p,q] = (c² − s²) a_pq + cs (a_pp − a_qq) = 0.
    /// </summary>
    private static void Rotate(double[,] a, double[,] v, int p, int q, int n, int sweep)
    {
        var apq = a[p, q];
        if (apq == 0) return;
        // After a few sweeps an entry below the rounding of both diagonal entries is set to zero
        // (Numerical Recipes' rule), so that convergence ends in exact zeros rather than noise.
        var g = 100 * Math.Abs(apq);
        if (sweep > 3 && Math.Abs(a[p, p]) + g == Math.Abs(a[p, p]) && Math.Abs(a[q, q]) + g == Math.Abs(a[q, q]))
        {
            a[p, q] = a[q, p] = 0;
            return;
        }
        var theta = (a[q, q] - a[p, p]) / (2 * apq);
        var t = (theta >= 0 ? 1.0 : -1.0) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
        if (double.IsInfinity(theta)) t = 0.5 / theta; // θ² overflows: t ≈ 1/(2θ)
        var c = 1 / Math.Sqrt(t * t + 1);
        var s = t * c;
        for (int k = 0; k < n; k++) // A ← A J (columns p and q)
        {
            var akp = a[k, p];
            var akq = a[k, q];
            a[k, p] = c * akp - s * akq;
            a[k, q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; k++) // A ← Jᵀ A (rows p and q)
        {
            var apk = a[p, k];
            var aqk = a[q, k];
            a[p, k] = c * apk - s * aqk;
            a[q, k] = s * apk + c * aqk;
        }
        a[p, q] = a[q, p] = 0; // exactly, not rounding's leftover
        for (int k = 0; k < n; k++) // V ← V J
        {
            var vkp = v[k, p];
            var vkq = v[k, q];
            v[k, p] = c * vkp - s * vkq;
            v[k, q] = s * vkp + c * vkq;
        }
    }

    /// <summary>
    /// The symmetric positive semi-definite square root V diag(√λ) Vᵀ. Eigenvalues that rounding made
    /// slightly negative are taken as zero.
    /// </summary>
    public static double[,] SqrtPsd(double[,] matrix)
    {
        var (values, vectors) = Decompose(matrix);
        var n = values.Length;
        var roots = values.Select(l => Math.Sqrt(Math.Max(l, 0))).ToArray();
        var result = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++)
            {
                double sum = 0;
                for (int k = 0; k < n; k++) sum += vectors[i, k] * roots[k] * vectors[j, k];
                result[i, j] = result[j, i] = sum;
            }
        return result;
    }

    /// <summary>Tr(A^½) of a symmetric PSD matrix: the sum of the square roots of its eigenvalues.</summary>
    public static double TraceSqrtPsd(double[,] matrix) =>
        Decompose(matrix).Values.Sum(l => Math.Sqrt(Math.Max(l, 0)));

    internal static double[,] Multiply(double[,] x, double[,] y)
    {
        int n = x.GetLength(0), m = x.GetLength(1), r = y.GetLength(1);
        if (y.GetLength(0) != m) throw new ArgumentException($"cannot multiply {n}×{m} by {y.GetLength(0)}×{r}");
        var result = new double[n, r];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < m; k++)
            {
                var xik = x[i, k];
                if (xik == 0) continue;
                for (int j = 0; j < r; j++) result[i, j] += xik * y[k, j];
            }
        return result;
    }

    private static double[,] Identity(int n)
    {
        var m = new double[n, n];
        for (int i = 0; i < n; i++) m[i, i] = 1;
        return m;
    }

    private static int CheckSquare(double[,] matrix)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        var n = matrix.GetLength(0);
        if (matrix.GetLength(1) != n) throw new ArgumentException($"matrix is {n}×{matrix.GetLength(1)}, not square", nameof(matrix));
        foreach (var x in matrix)
            if (!double.IsFinite(x)) throw new ArgumentException("matrix has a NaN or infinite entry", nameof(matrix));
        return n;
    }
}

using System.Text.Json;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Evaluation;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>FID and its linear algebra against float64 numbers from PyTorch (tests/fixtures/training/make_fid_reference.py).</summary>
public class FidTests
{
    private static readonly JsonElement[] Cases = LoadCases();

    private static JsonElement[] LoadCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(SharedData.Fixture("training/fid_reference.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    }

    private static JsonElement Case(string name) => Cases.Single(c => c.GetProperty("name").GetString() == name);

    private static double[] Vector(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToArray();

    private static double[,] Matrix(JsonElement e)
    {
        var rows = e.EnumerateArray().Select(Vector).ToArray();
        var m = new double[rows.Length, rows[0].Length];
        for (int i = 0; i < rows.Length; i++)
            for (int j = 0; j < rows[i].Length; j++) m[i, j] = rows[i][j];
        return m;
    }

    private static double[] Flat(double[,] m) => m.Cast<double>().ToArray();

    // Where a covariance is singular, its zero eigenvalues come out as ±1e-16 in both
    // implementations, and their square roots (1e-8) are noise of that size in the trace.
    private static double Tolerance(string name) => name == "rank_deficient" ? 1e-7 : 1e-9;

    private static void Close(double expected, double actual, double relative, string what) =>
        Assert.True(Math.Abs(expected - actual) <= relative * Math.Max(1, Math.Abs(expected)), $"{what}: expected {expected:R}, got {actual:R}");

    [Theory]
    [InlineData("small")]
    [InlineData("medium")]
    [InlineData("rank_deficient")]
    public void StatisticsAndFidOfFeaturesMatchTorch(string name)
    {
        var c = Case(name);
        var f1 = Matrix(c.GetProperty("features1"));
        var f2 = Matrix(c.GetProperty("features2"));
        var s1 = FeatureStatistics.FromFeatures(Flat(f1), f1.GetLength(1));
        var s2 = FeatureStatistics.FromFeatures(Flat(f2), f2.GetLength(1));
        Assert.Equal(f1.GetLength(0), s1.Count);
        var mu1 = Vector(c.GetProperty("mu1"));
        var sigma1 = Matrix(c.GetProperty("sigma1"));
        for (int i = 0; i < mu1.Length; i++) Close(mu1[i], s1.Mean[i], 1e-12, $"mu[{i}]");
        for (int i = 0; i < mu1.Length; i++)
            for (int j = 0; j < mu1.Length; j++) Close(sigma1[i, j], s1.Covariance[i, j], 1e-12, $"sigma[{i},{j}]");
        Close(c.GetProperty("fid").GetDouble(), Fid.Compute(s1, s2), Tolerance(name), "fid");
    }

    [Theory]
    [InlineData("small")]
    [InlineData("medium")]
    [InlineData("rank_deficient")]
    [InlineData("spd32")]
    [InlineData("spd32_ill_conditioned")]
    public void FidOfStatisticsMatchesTorch(string name)
    {
        var c = Case(name);
        var fid = Fid.Compute(Vector(c.GetProperty("mu1")), Matrix(c.GetProperty("sigma1")), Vector(c.GetProperty("mu2")), Matrix(c.GetProperty("sigma2")));
        Close(c.GetProperty("fid").GetDouble(), fid, Tolerance(name), name);
    }

    [Fact]
    public void FidIsSymmetricAndZeroForEqualStatistics()
    {
        var c = Case("spd32");
        var s1 = new FeatureStatistics(Vector(c.GetProperty("mu1")), Matrix(c.GetProperty("sigma1")), 100);
        var s2 = new FeatureStatistics(Vector(c.GetProperty("mu2")), Matrix(c.GetProperty("sigma2")), 100);
        Close(Fid.Compute(s1, s2), Fid.Compute(s2, s1), 1e-10, "symmetry");
        Assert.True(Fid.Compute(s1, s1) < 1e-9);
        // Only the means differ: FID is the squared distance between them.
        var shifted = s1 with { Mean = s1.Mean.Select(m => m + 0.5).ToArray() };
        Close(32 * 0.25, Fid.Compute(s1, shifted), 1e-9, "mean term");
    }

    [Fact]
    public void JacobiReconstructsTheMatrixWithOrthonormalVectors()
    {
        var a = Matrix(Case("spd32_ill_conditioned").GetProperty("sigma1"));
        var (values, vectors) = SymmetricEigen.Decompose(a);
        var n = values.Length;
        Assert.True(values.Zip(values.Skip(1)).All(p => p.First <= p.Second), "ascending");
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double rebuilt = 0, gram = 0;
                for (int k = 0; k < n; k++)
                {
                    rebuilt += vectors[i, k] * values[k] * vectors[j, k];
                    gram += vectors[k, i] * vectors[k, j];
                }
                Assert.True(Math.Abs(rebuilt - a[i, j]) < 1e-13, $"A[{i},{j}]");
                Assert.True(Math.Abs(gram - (i == j ? 1 : 0)) < 1e-13, $"VᵀV[{i},{j}]");
            }
        // The fixture's eigenvalues run from 1 down to 1e-6 (logspace).
        Close(1e-6, values[0], 1e-8, "smallest");
        Close(1, values[^1], 1e-12, "largest");
    }

    [Fact]
    public void SqrtOfASingularMatrixSquaresBack()
    {
        // Rank 1: [[1, 2], [2, 4]] = v vᵀ with v = (1, 2); its root is v vᵀ / |v|.
        var root = SymmetricEigen.SqrtPsd(new double[,] { { 1, 2 }, { 2, 4 } });
        var s5 = Math.Sqrt(5);
        Close(1 / s5, root[0, 0], 1e-14, "r00");
        Close(2 / s5, root[0, 1], 1e-14, "r01");
        Close(4 / s5, root[1, 1], 1e-14, "r11");
        var (values, _) = SymmetricEigen.Decompose(new double[,] { { 2, 0 }, { 0, -3 } });
        Assert.Equal([-3.0, 2.0], values);
    }

    [Fact]
    public void BatchedAccumulationEqualsOnePass()
    {
        var c = Case("medium");
        var f = Matrix(c.GetProperty("features1"));
        var d = f.GetLength(1);
        var flat = Flat(f);
        var whole = FeatureStatistics.FromFeatures(flat, d);
        var acc = new FeatureAccumulator();
        // Uneven batches, one of a single row (its own centred sum is zero).
        foreach (var (start, rows) in new[] { (0, 7), (7, 1), (8, 30), (38, f.GetLength(0) - 38) })
            acc.Add(flat.AsSpan(start * d, rows * d), d);
        var batched = acc.ToStatistics();
        Assert.Equal(whole.Count, batched.Count);
        for (int i = 0; i < d; i++)
        {
            Close(whole.Mean[i], batched.Mean[i], 1e-12, "mean");
            for (int j = 0; j < d; j++) Close(whole.Covariance[i, j], batched.Covariance[i, j], 1e-12, "cov");
        }
    }

    [Fact]
    public void StatisticsFromATensorSurviveASafetensorsRoundTrip()
    {
        var c = Case("small");
        var f = Matrix(c.GetProperty("features1"));
        using var scope = DisposeScope.Enter();
        var tensor = Tensor.From(Flat(f), f.GetLength(0), f.GetLength(1)).To(DType.Float32);
        var stats = FeatureStatistics.FromFeatures(tensor);
        Close(Vector(c.GetProperty("mu1"))[0], stats.Mean[0], 1e-6, "float32 features");
        var path = Path.Combine(Path.GetTempPath(), $"fid-stats-{Guid.NewGuid():N}.safetensors");
        try
        {
            stats.Save(path);
            var back = FeatureStatistics.Load(path);
            Assert.Equal(stats.Mean, back.Mean);
            Assert.Equal(Flat(stats.Covariance), Flat(back.Covariance));
            Assert.Equal(stats.Count, back.Count);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void BadInputsAreRejected()
    {
        var acc = new FeatureAccumulator();
        Assert.Throws<InvalidOperationException>(() => acc.ToStatistics());
        acc.Add([1.0, 2.0], 2);
        Assert.Throws<ArgumentException>(() => acc.Add([1.0, 2.0, 3.0], 3));
        Assert.Throws<ArgumentException>(() => acc.Add([double.NaN, 1.0], 2));
        Assert.Throws<ArgumentException>(() => Fid.Compute([0.0], new double[,] { { 1 } }, [0.0, 0.0], new double[,] { { 1, 0 }, { 0, 1 } }));
    }
}

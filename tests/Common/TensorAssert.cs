using System.Globalization;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Sdk;

namespace LatentDiffusion.Tests.Common;

/// <summary>
/// The one closeness assertion of the tests: |actual − expected| ≤ atol + rtol·|expected| elementwise
/// (NaN matches NaN, infinities match exactly), failing with the count of bad elements and the worst
/// one, by index. Tensors, expected values with a shape, and plain lists go through the same check.
/// </summary>
public static class TensorAssert
{
    /// <summary>Default tolerances for float32 results compared with PyTorch's.</summary>
    public const double Atol = 1e-5, Rtol = 1e-5;

    /// <summary>Asserts the shapes match and every element is within tolerance; returns the max absolute error.</summary>
    public static double Close(Tensor actual, Tensor expected, double atol, double rtol, string what = "tensor")
    {
        AssertShape(actual, expected.Shape, what);
        return Compare(Values(actual), Values(expected), atol, rtol, what, expected.Shape);
    }

    /// <summary>Asserts <paramref name="actual"/> has <paramref name="shape"/> and the values <paramref name="expected"/> (row-major).</summary>
    public static double Close(Tensor actual, double[] expected, long[] shape, double atol = Atol, double rtol = Rtol, string? what = null)
    {
        AssertShape(actual, shape, what);
        return Compare(Values(actual), expected, atol, rtol, what, shape);
    }

    public static double Close(Tensor actual, float[] expected, long[] shape, double atol = Atol, double rtol = Rtol, string? what = null) =>
        Close(actual, Array.ConvertAll(expected, v => (double)v), shape, atol, rtol, what);

    /// <summary>Plain values (schedules, optimiser states) under the same rule.</summary>
    public static double Close(IReadOnlyList<double> actual, IReadOnlyList<double> expected, double atol, double rtol, string what) =>
        Compare([.. actual], [.. expected], atol, rtol, what, [actual.Count]);

    public static double Close(IReadOnlyList<float> actual, IReadOnlyList<float> expected, double atol, double rtol, string what) =>
        Close(actual.Select(v => (double)v).ToList(), expected.Select(v => (double)v).ToList(), atol, rtol, what);

    /// <summary>Asserts the shape and exact equality (integers, booleans, or bit-exact floats; −0 equals 0).</summary>
    public static void Exact(Tensor actual, double[] expected, long[] shape, string? what = null)
    {
        AssertShape(actual, shape, what);
        var values = Values(actual);
        int bad = 0, first = -1;
        for (int i = 0; i < values.Length; i++)
        {
            bool same = values[i].Equals(expected[i]) || (values[i] == 0 && expected[i] == 0);
            if (!same) { bad++; if (first < 0) first = i; }
        }
        if (bad > 0)
            throw new XunitException($"{Label(what)}{bad} of {values.Length} elements differ; first at {Where(first, shape)}: actual {Fmt(values[first])}, expected {Fmt(expected[first])}");
    }

    public static void AssertShape(Tensor actual, long[] shape, string? what = null)
    {
        if (!actual.Shape.SequenceEqual(shape))
            throw new XunitException($"{Label(what)}shape [{string.Join(", ", actual.Shape)}], expected [{string.Join(", ", shape)}]");
    }

    /// <summary>max |a − b|, computed in float64.</summary>
    public static double MaxAbsDifference(Tensor a, Tensor b)
    {
        using var scope = DisposeScope.Enter();
        return (a.To(DType.Float64) - b.To(DType.Float64)).Abs().Max().Item();
    }

    /// <summary>The elements as doubles (exact for every dtype but int64 beyond 2^53).</summary>
    public static double[] Values(Tensor t)
    {
        using var scope = DisposeScope.Enter();
        var cpu = t.Detach().To(Device.CPU);
        return cpu.DType switch
        {
            DType.Float64 => cpu.Contiguous().ToArray<double>(),
            DType.Int64 => Array.ConvertAll(cpu.Contiguous().ToArray<long>(), v => (double)v),
            _ => cpu.To(DType.Float64).Contiguous().ToArray<double>(),
        };
    }

    private static double Compare(double[] actual, double[] expected, double atol, double rtol, string? what, long[] shape)
    {
        if (actual.Length != expected.Length)
            throw new XunitException($"{Label(what)}{actual.Length} values, expected {expected.Length}");
        int bad = 0, worst = -1;
        double worstExcess = double.NegativeInfinity, maxError = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i], e = expected[i];
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            double excess;
            if (double.IsInfinity(e) || double.IsInfinity(a) || double.IsNaN(a) || double.IsNaN(e))
                excess = a == e ? double.NegativeInfinity : double.PositiveInfinity;
            else
            {
                double error = Math.Abs(a - e);
                maxError = Math.Max(maxError, error);
                excess = error - (atol + rtol * Math.Abs(e));
            }
            if (excess <= 0) continue;
            bad++;
            if (worst < 0 || excess > worstExcess) { worst = i; worstExcess = excess; }
        }
        if (bad > 0)
            throw new XunitException($"{Label(what)}{bad} of {actual.Length} elements out of tolerance (atol {atol:G3}, rtol {rtol:G3}); " +
                $"max abs error {maxError:G6}; worst at {Where(worst, shape)}: actual {Fmt(actual[worst])}, expected {Fmt(expected[worst])}");
        return maxError;
    }

    private static string Label(string? what) => what is null ? "" : what + ": ";

    private static string Where(int flat, long[] shape)
    {
        if (shape.Length == 0) return "[]";
        var index = new long[shape.Length];
        long rest = flat;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            if (shape[d] == 0) break;
            index[d] = rest % shape[d];
            rest /= shape[d];
        }
        return $"[{string.Join(", ", index)}] (flat {flat})";
    }

    private static string Fmt(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>A golden safetensors file: its tensors by name, freed on dispose.</summary>
public sealed class Golden : IDisposable
{
    private readonly Dictionary<string, Tensor> tensors;

    public Golden(string path) => tensors = SafeTensorsFile.LoadFile(path);

    public Tensor this[string name] => tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"golden has no tensor '{name}'");

    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}

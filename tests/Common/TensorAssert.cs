using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Sdk;

namespace LatentDiffusion.Tests.Common;

/// <summary>Comparisons with the golden rule |actual − expected| ≤ atol + rtol·|expected|, reporting the worst element.</summary>
public static class TensorAssert
{
    /// <summary>Asserts the shapes match and every element is within tolerance; returns the max absolute error.</summary>
    public static double Close(Tensor actual, Tensor expected, double atol, double rtol, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        using var a = actual.Detach().To(Device.CPU, DType.Float32).Contiguous();
        using var e = expected.Detach().To(Device.CPU, DType.Float32).Contiguous();
        var av = a.ToArray<float>();
        var ev = e.ToArray<float>();
        double maxError = 0;
        int bad = 0, worst = -1;
        double worstExcess = double.NegativeInfinity;
        for (int i = 0; i < av.Length; i++)
        {
            if (!float.IsFinite(av[i])) throw new XunitException($"{what}: element {i} is {av[i]}");
            double err = Math.Abs((double)av[i] - ev[i]);
            maxError = Math.Max(maxError, err);
            double excess = err - (atol + rtol * Math.Abs(ev[i]));
            if (excess > 0)
            {
                bad++;
                if (excess > worstExcess) { worstExcess = excess; worst = i; }
            }
        }
        if (bad > 0)
            throw new XunitException($"{what}: {bad} of {av.Length} elements out of tolerance (atol {atol:G3}, rtol {rtol:G3}); " +
                $"max abs error {maxError:G4}; worst at flat index {worst}: actual {av[worst]:G9}, expected {ev[worst]:G9}");
        return maxError;
    }

    public static double MaxAbsDifference(Tensor a, Tensor b)
    {
        using var difference = a - b;
        using var abs = difference.Abs();
        using var max = abs.Max();
        return max.Item();
    }
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

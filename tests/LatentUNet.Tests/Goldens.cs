using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.LatentUNet.Tests;

/// <summary>Golden tensors produced by diffusers 0.30.3 (copied from ../shared/golden into tests/fixtures/latentunet).</summary>
public sealed class Golden : IDisposable
{
    private readonly Dictionary<string, Tensor> tensors;

    public Golden(string relative) => tensors = SafeTensorsFile.LoadFile(SharedData.Fixture("latentunet/" + relative));

    public Tensor this[string name] => tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"golden has no tensor '{name}'");

    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}

public static class Close
{
    /// <summary>
    /// Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise with no NaN/Inf (the goldens' rule)
    /// and returns the largest absolute difference, for the report.
    /// </summary>
    public static double Assert(Tensor actual, Tensor expected, double atol, double rtol, string what = "tensor")
    {
        Xunit.Assert.Equal(expected.Shape, actual.Shape);
        using var scope = DisposeScope.Enter();
        var a = actual.To(Device.CPU, DType.Float32).ToArray<float>();
        var e = expected.To(Device.CPU, DType.Float32).ToArray<float>();
        double maxAbs = 0;
        int worst = -1;
        double worstExcess = double.NegativeInfinity;
        for (int i = 0; i < a.Length; i++)
        {
            Xunit.Assert.True(float.IsFinite(a[i]), $"{what}: element {i} is {a[i]}");
            double diff = Math.Abs((double)a[i] - e[i]);
            maxAbs = Math.Max(maxAbs, diff);
            double excess = diff - (atol + rtol * Math.Abs(e[i]));
            if (excess > worstExcess) { worstExcess = excess; worst = i; }
        }
        Xunit.Assert.True(worstExcess <= 0,
            $"{what}: element {worst} is {a[worst]}, expected {e[worst]} (|diff| {Math.Abs(a[worst] - e[worst]):E3} > atol {atol} + rtol {rtol}·|expected|); max |diff| {maxAbs:E3}");
        return maxAbs;
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var scope = DisposeScope.Enter();
        return (a - b).Abs().Max().Item();
    }
}

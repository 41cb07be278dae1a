using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>Fixture paths and tolerance checks shared by the scheduler tests.</summary>
internal static class SchedulerTestSupport
{
    public static string Golden(string name) => SharedData.Fixture($"pipeline/goldens/{name}.safetensors");

    public static string ConfigPath(string schedulerCase) => SharedData.Fixture($"pipeline/schedulers/{schedulerCase}/scheduler_config.json");

    public static string ResolvedConfigPath(string schedulerCase) => SharedData.Fixture($"pipeline/schedulers/{schedulerCase}/resolved_config.json");

    /// <summary>
    /// Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise with no NaN/Inf (the goldens'
    /// rule), comparing in float64; returns the largest absolute error.
    /// </summary>
    public static double AssertClose(Tensor actual, Tensor expected, double atol, double rtol, string what)
    {
        using var scope = DisposeScope.Enter();
        Assert.True(actual.Shape.SequenceEqual(expected.Shape),
            $"{what}: shape [{string.Join(", ", actual.Shape)}] != golden [{string.Join(", ", expected.Shape)}]");
        var a = actual.To(Device.CPU, DType.Float64).Flatten().ToArray<double>();
        var e = expected.To(Device.CPU, DType.Float64).Flatten().ToArray<double>();
        double maxError = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(double.IsFinite(a[i]), $"{what}: element {i} is {a[i]}");
            double error = Math.Abs(a[i] - e[i]);
            Assert.True(error <= atol + rtol * Math.Abs(e[i]),
                $"{what}: element {i} is {a[i]:R}, golden {e[i]:R} (|error| {error:E3} > {atol} + {rtol}·|golden|)");
            maxError = Math.Max(maxError, error);
        }
        return maxError;
    }

    public static void AssertClose(IReadOnlyList<double> actual, IReadOnlyList<double> expected, double atol, double rtol, string what)
    {
        Assert.True(actual.Count == expected.Count, $"{what}: {actual.Count} values, expected {expected.Count}");
        for (int i = 0; i < actual.Count; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= atol + rtol * Math.Abs(expected[i]),
                $"{what}[{i}]: {actual[i]:R}, expected {expected[i]:R}");
    }
}

using System.Diagnostics;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>The op-level profiler (native/src/profiler.cpp): top-level operators only, their FLOPs, never more time than the wall clock.</summary>
[Collection(LiveTensorCount.Name)]
public class OpProfilerTests
{
    [Fact]
    public void RecordsTheTopLevelConvolutionAndLinearWithTheirFlops()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(5);
        var x = Tensors.Randn([1, 8, 6, 6], g);
        var convWeight = Tensors.Randn([16, 8, 3, 3], g);
        var linearWeight = Tensors.Randn([4, 16], g);
        using var noGrad = Autograd.NoGrad();
        IReadOnlyList<OpProfileEntry> entries;
        var watch = Stopwatch.StartNew();
        using (var profiler = OpProfiler.Start())
        {
            var y = Functional.Conv2d(x, convWeight, padding: 1); // [1, 16, 6, 6]
            _ = Functional.Linear(y.Permute(0, 2, 3, 1), linearWeight); // 36 rows of 16 → 4
            entries = profiler.Stop();
        }
        watch.Stop();

        var conv = Assert.Single(entries, e => e.Name == "aten::conv2d");
        Assert.Equal(1, conv.Calls);
        Assert.Equal(2.0 * 16 * 36 * 8 * 9, conv.Flops); // 2 · Cout · H·W · Cin · k²
        var linear = Assert.Single(entries, e => e.Name == "aten::linear");
        Assert.Equal(2.0 * 36 * 16 * 4, linear.Flops);
        Assert.Contains(entries, e => e.Name == "aten::permute" && e.Flops is null);
        // What conv2d and linear call inside (convolution, mkldnn_convolution, matmul, mm) is their time, not an entry.
        Assert.DoesNotContain(entries, e => e.Name is "aten::convolution" or "aten::_convolution" or "aten::mkldnn_convolution" or "aten::matmul" or "aten::mm");
        Assert.All(entries, e => Assert.True(e.Seconds > 0, e.Name));
        Assert.True(entries.Sum(e => e.Seconds) <= watch.Elapsed.TotalSeconds);
    }

    [Fact]
    public void OneProfileAtATime()
    {
        using var profiler = OpProfiler.Start();
        var e = Assert.Throws<TorchException>(() => OpProfiler.Start());
        Assert.Contains("already running", e.Message);
        _ = profiler.Stop();
        Assert.Throws<InvalidOperationException>(() => profiler.Stop());
    }
}

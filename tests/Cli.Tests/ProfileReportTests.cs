using LatentDiffusion.Cli.Benchmarks;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Tests;

/// <summary>`ldm bench … --profile`: categories of a real profile of a tiny model, and ONNX Runtime's trace aggregated by op type.</summary>
[Collection(LiveTensorCount.Name)]
public class ProfileReportTests
{
    [Fact]
    public void ATinyModelsProfileHasItsConvolutionAndLinearAndSumsToAtMostTheWallTime()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(1);
        var x = Tensors.Randn([2, 8, 16, 16], g);
        var convWeight = Tensors.Randn([16, 8, 3, 3], g) * 0.1;
        var linearWeight = Tensors.Randn([32, 16], g) * 0.1;
        using var inference = Autograd.InferenceMode();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        IReadOnlyList<OpProfileEntry> entries;
        using (var profiler = OpProfiler.Start())
        {
            var h = Functional.Conv2d(x, convWeight, padding: 1).Silu();
            var tokens = Functional.GroupNorm(h, 4).Flatten(2).Transpose(1, 2); // [2, 256, 16]
            _ = Functional.Linear(tokens, linearWeight); // 512 rows: the oneDNN path
            entries = profiler.Stop();
        }
        var profile = ModelProfile.From("test", watch.Elapsed.TotalSeconds, entries);

        var byCategory = profile.Categories.ToDictionary(c => c.Category);
        Assert.True(byCategory["convolution"].Calls >= 1);
        Assert.Equal(2.0 * 2 * 16 * 256 * 8 * 9, Assert.Single(entries, e => e.Name == "aten::conv2d").Flops); // 2 · N · Cout · H·W · Cin · k²
        Assert.NotNull(byCategory["convolution"].Gflops);
        Assert.Equal(1, byCategory["linear/matmul"].Calls);
        Assert.True(byCategory["normalisation"].Calls >= 1);
        Assert.True(byCategory["element-wise"].Calls >= 1);
        Assert.True(profile.Categories.Sum(c => c.Ms) <= profile.WallMs, $"{profile.Categories.Sum(c => c.Ms)} ms in the categories, {profile.WallMs} ms wall");
        Assert.True(profile.OutsideOpsMs >= 0);
        Assert.Equal(profile.Categories.Select(c => c.Category), ModelProfile.Order.Where(byCategory.ContainsKey));
        Assert.Equal(entries.Count, profile.Ops.Count); // every operator, slowest first; the table's top ones lead
        Assert.Equal(profile.Top, profile.Ops.Take(profile.Top.Count));
        Assert.Equal(profile.Ops.OrderByDescending(o => o.Ms).Select(o => o.Ms), profile.Ops.Select(o => o.Ms));
    }

    [Theory]
    [InlineData("aten::mkldnn_convolution", "convolution")]
    [InlineData("aten::conv2d [1x8x6x6], [16x8x3x3]", "convolution")]
    [InlineData("ld::linear_onednn", "linear/matmul")]
    [InlineData("aten::linear", "linear/matmul")]
    [InlineData("ld::attention", "attention")]
    [InlineData("aten::group_norm", "normalisation")]
    [InlineData("aten::gelu", "element-wise")]
    [InlineData("aten::cat", "copies/other")]
    [InlineData("FusedConv", "convolution")]
    [InlineData("MatMul", "linear/matmul")]
    [InlineData("MatMul (attention)", "attention")]
    [InlineData("InstanceNormalization", "normalisation")]
    [InlineData("Transpose", "copies/other")]
    public void OperatorsFallIntoTheirCategory(string op, string category) => Assert.Equal(category, ModelProfile.Category(op));

    [Fact]
    public void OnnxRuntimesTraceIsSummedByOpTypeOverTheLastRunOnly()
    {
        const string trace = """
        [
          {"cat":"Session","name":"model_run","ts":100,"dur":50},
          {"cat":"Node","name":"/Conv_0_kernel_time","ts":110,"dur":40,"args":{"op_name":"Conv"}},
          {"cat":"Session","name":"model_run","ts":1000,"dur":100},
          {"cat":"Node","name":"/Conv_0_kernel_time","ts":1010,"dur":30,"args":{"op_name":"Conv","input_type_shape":[{"float":[2,4,8,8]},{"float":[8,4,3,3]}]}},
          {"cat":"Node","name":"/Conv_0_fence_before","ts":1010,"dur":5,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"/MatMul_1_kernel_time","ts":1050,"dur":20,"args":{"op_name":"MatMul","input_type_shape":[{"float":[2,64,32]},{"float":[32,16]}]}},
          {"cat":"Node","name":"/MatMul_2_kernel_time","ts":1075,"dur":10,"args":{"op_name":"MatMul","input_type_shape":[{"float":[2,8,64,40]},{"float":[2,8,40,64]}]}}
        ]
        """;
        var p = OnnxUNet.FromTrace(trace);

        Assert.Equal(0.1, p.WallMs, 6);
        var conv = Assert.Single(p.Top, o => o.Op == "Conv");
        Assert.Equal(1, conv.Calls);
        Assert.Equal(0.03, conv.Ms, 6);
        var linear = Assert.Single(p.Top, o => o.Op == "MatMul");
        Assert.Equal(2.0 * 128 * 32 * 16 / 20e-6 / 1e9, linear.Gflops!.Value, 0.1);
        Assert.Equal("attention", Assert.Single(p.Top, o => o.Op == "MatMul (attention)").Category);
        Assert.Equal(0.04, p.OutsideOpsMs, 6);
    }
}

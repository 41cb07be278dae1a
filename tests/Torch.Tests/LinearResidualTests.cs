using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.Native;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Issue 19: a transformer's skip connection added inside the product before it (Linear.Forward(x, residual): a binary
/// post-op of oneDNN's matmul on the packed weight, native/src/onednn.cpp) instead of in a pass of its own; everywhere
/// else the separate sum. Each against the separate sum and a float64 reference.
/// </summary>
[Collection(LiveTensorCount.Name)]
public class LinearResidualTests
{
    private static IDisposable OneDnnPath(bool direct)
    {
        var mode = TorchRuntime.UseDirectOneDnn(direct);
        Assert.True(TorchRuntime.DirectOneDnnActive == direct, "the direct oneDNN path was not built (native/ needs libdnnl-dev)");
        return mode;
    }

    private static bool BitEqual(Tensor a, Tensor b) =>
        a.DType == b.DType && a.Shape.AsSpan().SequenceEqual(b.Shape) && TensorAssert.MaxAbsDifference(a, b) == 0;

    private static int Count(IReadOnlyList<OpProfileEntry> ops, string name) => (int)ops.Where(e => e.Name == name).Sum(e => e.Calls);

    /// <summary>x Wᵀ + b + r in float64 from the layer's own (f32 or bf16) values, converted exactly.</summary>
    private static Tensor Reference(Linear linear, Tensor x, Tensor r)
    {
        using var scope = DisposeScope.Enter();
        var y = Functional.Linear(x.To(DType.Float64), linear.Weight.To(DType.Float64), linear.Bias?.To(DType.Float64));
        return scope.Keep(y + r.To(DType.Float64));
    }

    private static double MeanAbsError(Tensor reference, Tensor actual)
    {
        using var scope = DisposeScope.Enter();
        return (reference - actual.To(DType.Float64)).Abs().Mean().Item();
    }

    [Theory]
    [InlineData(DType.Float32, 300, 64, 96, true)]
    [InlineData(DType.Float32, 2048, 320, 320, true)] // a U-Net attention output at 32² latents
    [InlineData(DType.Float32, 7, 33, 47, false)]
    [InlineData(DType.BFloat16, 300, 64, 96, true)]
    [InlineData(DType.BFloat16, 2048, 320, 320, true)]
    [InlineData(DType.BFloat16, 154, 1280, 320, false)]
    public void TheResidualIsAddedInsideThePackedProduct(DType dtype, int rows, int inFeatures, int outFeatures, bool bias)
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(41);
        using var linear = new Linear(inFeatures, outFeatures, bias, g);
        linear.To(dtype);
        var x = Tensors.Randn([2, rows / 2 + rows % 2, inFeatures], g).To(dtype);
        var r = Tensors.Randn([2, rows / 2 + rows % 2, outFeatures], g).To(dtype);
        using var noGrad = Autograd.NoGrad();
        var product = linear.Forward(x);
        var separate = product + r;
        using var profiler = OpProfiler.Start();
        var fused = linear.Forward(x, r);
        var ops = profiler.Stop();
        Assert.Equal(1, Count(ops, "ld::linear_prepacked"));
        Assert.Equal(0, Count(ops, "aten::add") + Count(ops, "aten::add_")); // no pass of its own
        Assert.True(fused.IsContiguous);
        if (dtype == DType.Float32)
        {
            // f32: (x Wᵀ + b) + r in the same order, each sum rounded to f32: the same values.
            Assert.True(BitEqual(separate, fused), $"max abs diff {TensorAssert.MaxAbsDifference(separate, fused)}");
            return;
        }
        // bf16: the separate sum rounds the product to bf16 and then the sum; the post-op adds r to the f32 product and
        // rounds once. They differ by at most the product's rounding (½ ulp of |product|) and the two sums' (½ ulp each),
        // ulp(v) ≤ 2⁻⁷ |v| for bf16; and rounding once is more accurate on average, against float64.
        var product64 = product.To(DType.Float64).Abs();
        var bound = (product64 + separate.To(DType.Float64).Abs() + fused.To(DType.Float64).Abs()) * Math.Pow(2, -8);
        var excess = ((separate.To(DType.Float64) - fused.To(DType.Float64)).Abs() - bound).Max().Item();
        Assert.True(excess <= 0, $"a difference beyond the roundings by {excess}");
        var reference = Reference(linear, x, r);
        Assert.True(MeanAbsError(reference, fused) < MeanAbsError(reference, separate),
            $"fused {MeanAbsError(reference, fused)} vs separate {MeanAbsError(reference, separate)} against float64");
    }

    [Fact]
    public void WhereTheProductCannotTakeItTheSumIsSeparate()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(43);
        using var linear = new Linear(64, 96, generator: g);
        var x = Tensors.Randn([3, 5, 64], g);
        var full = Tensors.Randn([3, 5, 96], g);
        var row = Tensors.Randn([96], g);
        using (OneDnnPath(direct: true))
        using (Autograd.NoGrad())
        {
            // A broadcast residual: the separate sum, the same values.
            Assert.True(BitEqual(linear.Forward(x) + row, linear.Forward(x, row)));
            // An adapter: ((x Wᵀ + b) + adapter(x)) + r, diffusers' order.
            linear.Adapter = v => v.Narrow(-1, 0, 1).Expand(v.Shape[..^1].Append(96L).ToArray()) * 0.5;
            var expected = linear.Forward(x) + full;
            using var profiler = OpProfiler.Start();
            var actual = linear.Forward(x, full);
            Assert.True(Count(profiler.Stop(), "aten::add") >= 2);
            Assert.True(BitEqual(expected, actual));
            linear.Adapter = null;
        }
        using (OneDnnPath(direct: false))
        using (Autograd.NoGrad())
        {
            // Without the direct path (the plain weight for 15 rows here, or linear.cpp's packed kernel): the product, then the sum.
            Assert.True(BitEqual(linear.Forward(x) + full, linear.Forward(x, full)));
        }
        // Autograd: the plain ops, gradients reach the residual and the weight.
        using (Autograd.EnableGrad())
        {
            var r = full.Clone().RequiresGrad_(true);
            linear.Forward(x, r).Sum().Backward();
            Assert.Equal(1.0, r.Grad!.Min().Item());
            Assert.Equal(1.0, r.Grad!.Max().Item());
            Assert.NotNull(linear.Weight.Grad);
        }
    }

    [Fact]
    public void TheNativeSumRefusesAResidualOfAnotherShapeOrDtypeInOneLine()
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(47);
        using var noGrad = Autograd.NoGrad();
        var w = Tensors.Randn([96, 64], g);
        var packed = new Tensor(NativeMethods.LinearPrepack(w.Handle), "linear_prepack");
        var x = Tensors.Randn([4, 64], g);
        foreach (var bad in new[] { Tensors.Randn([4, 95], g), Tensors.Randn([96], g), Tensors.Randn([4, 96], g).To(DType.BFloat16) })
        {
            var error = Assert.Throws<TorchException>(() => new Tensor(NativeMethods.LinearPrepackedAdd(x.Handle, packed.Handle, IntPtr.Zero, bad.Handle), "linear_prepacked_add"));
            Assert.Contains("the residual must be a CPU tensor of the output's shape and dtype", error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
    }
}

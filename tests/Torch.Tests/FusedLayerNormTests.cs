using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// The fused inference LayerNorm kernel (native/src/layernorm.cpp) against LayerNorm computed in float64 from the same
/// input values, with the kernel on and forced off (<see cref="FusedNorm.Enabled"/>, as LDTORCH_FUSED_NORM=0 does):
/// f32 to float rounding, bf16 to one rounding of the output. The tolerances are FusedGroupNormTests'.
/// </summary>
[Collection(LiveTensorCount.Name)]
public class FusedLayerNormTests
{
    // (shape, normalised dimensions): the SD U-Net's and CLIP's widths, a tail shorter than 16, several normalised
    // dimensions, rows of two values. (Rows of one value are left out: their variance is 0, rstd = 1/√eps ≈ 316, and
    // libtorch's own x·rstd − mean·rstd then misses the bias by ~5e-5.)
    public static TheoryData<int[], int> Shapes => new()
    {
        { [2, 64, 320], 1 },
        { [1, 77, 768], 1 },
        { [3, 5, 1280], 1 },
        { [4, 7], 1 },
        { [2, 3, 4, 5], 2 },
        { [1, 33], 1 },
        { [3, 2, 2], 1 },
    };

    /// <summary>LayerNorm (biased variance) over the last d values of each row, in float64.</summary>
    private static double[] Reference(double[] x, int d, double[]? w, double[]? b, double eps)
    {
        var y = new double[x.Length];
        for (int start = 0; start < x.Length; start += d)
        {
            double mean = 0, var = 0;
            for (int i = 0; i < d; i++) mean += x[start + i];
            mean /= d;
            for (int i = 0; i < d; i++) var += (x[start + i] - mean) * (x[start + i] - mean);
            var rstd = 1 / Math.Sqrt(var / d + eps);
            for (int i = 0; i < d; i++)
                y[start + i] = (x[start + i] - mean) * rstd * (w?[i] ?? 1) + (b?[i] ?? 0);
        }
        return y;
    }

    /// <summary>Which affine parameters: both, the weight only, none, both in f32 beside a bf16 input.</summary>
    public enum Affine { Both, WeightOnly, None, F32Parameters }

    private static void AssertMatchesReference(int[] shapeInts, int normDims, DType dtype, Affine affine, double offset, double noise, int seed)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator((ulong)seed);
        long[] shape = shapeInts.Select(v => (long)v).ToArray();
        long[] normalized = shape[^normDims..];
        int d = (int)normalized.Aggregate(1L, (a, v) => a * v);
        var x = (Tensors.Randn(shape, g) * noise + offset).To(dtype);
        var parameterType = affine == Affine.F32Parameters ? DType.Float32 : dtype;
        Tensor? w = affine == Affine.None ? null : (Tensors.Randn(normalized, g) * 0.2 + 1).To(parameterType);
        Tensor? b = affine is Affine.None or Affine.WeightOnly ? null : (Tensors.Randn(normalized, g) * 0.2).To(parameterType);
        const double eps = 1e-5;
        var expected = Reference(TensorAssert.Values(x), d, w is null ? null : TensorAssert.Values(w), b is null ? null : TensorAssert.Values(b), eps);
        var y = Functional.LayerNorm(x, normalized, w, b, eps);
        Assert.Equal(dtype, y.DType);
        TensorAssert.AssertShape(y, shape);
        // f32: float rounding of the normalised value (a few ulp). bf16: one rounding of the output (2⁻⁹ relative).
        var rtol = dtype == DType.BFloat16 ? 4e-3 : 2e-6;
        TensorAssert.Close(TensorAssert.Values(y), expected, 2e-6, rtol,
            $"{dtype} [{string.Join(", ", shape)}] over {normDims} dims, {affine}, offset {offset}, fused {FusedNorm.Enabled}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesFloat64LayerNorm(int[] shape, int normDims)
    {
        using var inference = Autograd.InferenceMode();
        foreach (var on in new[] { true, false })
            FusedNormTesting.WithFused(on, () =>
            {
                foreach (var dtype in new[] { DType.Float32, DType.BFloat16 })
                    foreach (var affine in Enum.GetValues<Affine>())
                        if (affine != Affine.F32Parameters || dtype == DType.BFloat16)
                            AssertMatchesReference(shape, normDims, dtype, affine, offset: 0.5, noise: 2, seed: shape.Sum() + normDims);
            });
    }

    /// <summary>A large mean with small noise (1e4 + 0.01·N(0, 1)): the variance survives (two-pass statistics).</summary>
    [Fact]
    public void LargeOffsetKeepsTheVariance()
    {
        using var inference = Autograd.InferenceMode();
        if (!FusedNorm.Enabled)
        {
            // No AVX-512 (or LDTORCH_FUSED_NORM=0): libtorch's LayerNorm runs, whose one-pass statistics lose a variance
            // 1e-8 of the squared mean, so the two-pass property is the kernel's alone; the fallback is checked at an
            // offset it resolves.
            AssertMatchesReference([2, 9, 320], 1, DType.Float32, Affine.Both, offset: 1, noise: 0.5, seed: 3);
            return;
        }
        AssertMatchesReference([2, 9, 320], 1, DType.Float32, Affine.Both, offset: 1e4, noise: 0.01, seed: 3);
        AssertMatchesReference([1, 16, 768], 1, DType.Float32, Affine.WeightOnly, offset: -3e3, noise: 0.05, seed: 4);
    }

    /// <summary>A row holding inf or NaN comes out NaN, the other rows unchanged: at::layer_norm's behaviour.</summary>
    [Theory]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    [InlineData(double.NaN)]
    public void NonFiniteValuesPoisonTheirRowAsLibtorchDoes(double bad)
    {
        using var inference = Autograd.InferenceMode();
        foreach (var dtype in new[] { DType.Float32, DType.BFloat16 })
        {
            using var scope = DisposeScope.Enter();
            using var g = new Generator(5);
            var values = TensorAssert.Values(Tensors.Randn([2, 4, 40], g));
            values[5 * 40 + 17] = bad; // row 5 of 8
            var x = Tensor.From(values, 2, 4, 40).To(dtype);
            var w = Tensors.Randn([40], g).To(dtype);
            var b = Tensors.Randn([40], g).To(dtype);
            FusedNormTesting.NaNOnlyInThePoisonedBlock(() => Functional.LayerNorm(x, [40], w, b), block: 40, poisoned: 5, $"{dtype}");
        }
    }

    /// <summary>Each row is one thread's, summed in a fixed order: 1 and 2 threads give the same bits.</summary>
    [Fact]
    public void BitIdenticalWhateverTheThreadCount()
    {
        using var inference = Autograd.InferenceMode();
        using var scope = DisposeScope.Enter();
        using var g = new Generator(6);
        var x = Tensors.Randn([2, 1024, 320], g);
        var w = Tensors.Randn([320], g);
        var b = Tensors.Randn([320], g);
        FusedNormTesting.SameBitsOnOneAndTwoThreads(x, xd => Functional.LayerNorm(xd, [320], w, b));
    }

    /// <summary>With a weight that requires grad, autograd records: libtorch's LayerNorm runs and has gradients.</summary>
    [Fact]
    public void WithAutogradItFallsBackAndHasGradients()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(7);
        var norm = new LayerNorm(24);
        var x = Tensors.Randn([3, 5, 24], g);
        Tensor plain = null!;
        FusedNormTesting.WithFused(false, () => plain = norm.Forward(x).Detach());
        using (Autograd.EnableGrad())
        {
            var y = norm.Forward(x);
            Assert.True(y.RequiresGrad);
            Assert.Equal(0.0, TensorAssert.MaxAbsDifference(y.Detach(), plain));
            y.Square().Sum().Backward();
            Assert.NotNull(norm.Weight!.Grad);
            Assert.True(TensorAssert.MaxAbsDifference(norm.Weight.Grad!, Tensors.ZerosLike(norm.Weight)) > 0);
        }
    }

    /// <summary>Where the kernel is on it is what runs (its own profiler row), with no aten::to; off, libtorch's does.</summary>
    [Fact]
    public void TheKernelRunsWhereEnabledAndTheSwitchForcesTheFallback()
    {
        using var inference = Autograd.InferenceMode();
        using var scope = DisposeScope.Enter();
        using var g = new Generator(8);
        var x = Tensors.Randn([2, 16, 64], g).To(DType.BFloat16);
        var w = Tensors.Randn([64], g).To(DType.BFloat16);
        foreach (var on in new[] { true, false })
            FusedNormTesting.WithFused(on, () =>
            {
                IReadOnlyList<OpProfileEntry> entries;
                using (var profiler = OpProfiler.Start()) { _ = Functional.LayerNorm(x, [64], w, w); entries = profiler.Stop(); }
                var names = entries.Select(e => e.Name).ToList();
                if (FusedNorm.Enabled) Assert.Equal(["ld::layer_norm"], names);
                else Assert.Contains("aten::layer_norm", names);
            });
    }
}

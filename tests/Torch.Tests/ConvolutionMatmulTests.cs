using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Issue 19: the convolutions with a long inner dimension (Cin·kh·kw ≥ 11,520, kernels larger than 1×1: the U-Net's
/// 3×3 ones from 1,280 channels) run for inference as im2col and oneDNN's matmul on a packed weight (native/src/onednn.cpp)
/// where oneDNN is called directly; the others keep libtorch's blocked kernel. Each against a float64 reference.
/// </summary>
[Collection(LiveTensorCount.Name)]
public class ConvolutionMatmulTests
{
    private static bool BitEqual(Tensor a, Tensor b) =>
        a.DType == b.DType && a.Shape.AsSpan().SequenceEqual(b.Shape) && TensorAssert.MaxAbsDifference(a, b) == 0;

    private static IDisposable OneDnnPath(bool direct)
    {
        var mode = TorchRuntime.UseDirectOneDnn(direct);
        Assert.True(TorchRuntime.DirectOneDnnActive == direct, "the direct oneDNN path was not built (native/ needs libdnnl-dev)");
        return mode;
    }

    /// <summary>The module's convolution in float64 (libtorch's own, the weight and input converted exactly).</summary>
    private static Tensor Reference(Conv2d conv, Tensor x)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var y = Functional.Conv2d(x.To(DType.Float64), conv.Weight.To(DType.Float64), conv.Bias?.To(DType.Float64),
            conv.Stride, conv.Padding, conv.Dilation, conv.Groups);
        return scope.Keep(y);
    }

    /// <summary>
    /// The error against float64, relative to the output's largest value: f32 sums of 11,520–15,360 products in another
    /// order than libtorch's (measured ≤ 1e-6; bound 4e-6); bf16 accumulates in f32 and rounds the output once (2⁻⁹
    /// relative), as libtorch's bf16 kernel does, bound a few roundings.
    /// </summary>
    private static void AssertNearReference(Tensor reference, Tensor actual, DType dtype)
    {
        Assert.Equal(reference.Shape, actual.Shape);
        Assert.Equal(dtype, actual.DType);
        using var scope = DisposeScope.Enter();
        var scale = reference.Abs().Max().Item();
        var diff = TensorAssert.MaxAbsDifference(reference, actual.To(DType.Float64));
        var bound = (dtype == DType.BFloat16 ? 8e-3 : 4e-6) * scale;
        Assert.True(diff <= bound, $"max abs diff {diff} (bound {bound}, output max {scale})");
    }

    [Theory]
    [InlineData(DType.Float32, 2, 1280, 24, 3, 3, 1, 1, 1, 8, 8, true)] // the U-Net's shape, fewer outputs
    [InlineData(DType.Float32, 1, 1280, 16, 3, 3, 2, 1, 1, 9, 7, false)] // stride 2, odd and unequal sizes, no bias
    [InlineData(DType.Float32, 3, 1280, 8, 3, 3, 1, 2, 2, 5, 6, true)] // dilation 2, padding 2, batch 3
    [InlineData(DType.Float32, 1, 1280, 8, 3, 3, 1, 0, 1, 22, 21, true)] // 400 rows: two im2col chunks
    [InlineData(DType.Float32, 2, 1024, 12, 3, 5, 1, 2, 1, 6, 7, true)] // a 3×5 kernel (im2col's tap order)
    [InlineData(DType.BFloat16, 2, 1280, 24, 3, 3, 1, 1, 1, 8, 8, true)]
    [InlineData(DType.BFloat16, 1, 1280, 16, 3, 3, 1, 1, 1, 24, 24, true)] // 576 rows: two chunks
    [InlineData(DType.BFloat16, 2, 2560, 8, 3, 3, 2, 1, 1, 4, 5, false)]
    public void ALongConvolutionRunsAsAMatmulAndMatchesFloat64(DType dtype, int batch, int inChannels, int outChannels, int kh, int kw,
        int stride, int padding, int dilation, int height, int width, bool bias)
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(41);
        using var conv = new Conv2d(inChannels, outChannels, (kh, kw), (stride, stride), (padding, padding), (dilation, dilation),
            bias: bias, generator: g).To(dtype);
        var x = Tensors.Randn([batch, inChannels, height, width], g).To(dtype);
        var expected = Reference(conv, x);
        using var noGrad = Autograd.NoGrad();
        using var profiler = OpProfiler.Start();
        var y = conv.Forward(x);
        var ops = profiler.Stop();
        var flops = 2.0 * y.NumEl * inChannels * kh * kw;
        Assert.Contains(ops, e => e.Name == "ld::convolution_matmul" && e.Flops == flops);
        Assert.DoesNotContain(ops, e => e.Name.Contains("mkldnn", StringComparison.Ordinal));
        AssertNearReference(expected, y, dtype);
    }

    [Fact]
    public void AStridedInputIsReadAsItsValues()
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(42);
        using var conv = new Conv2d(1280, 8, 3, padding: 1, generator: g);
        var big = Tensors.Randn([2, 1280, 10, 10], g);
        var x = big.Narrow(2, 1, 8).Narrow(3, 2, 8); // not contiguous
        using var noGrad = Autograd.NoGrad();
        AssertNearReference(Reference(conv, x.Contiguous()), conv.Forward(x), DType.Float32);
    }

    /// <summary>Short convolutions, 1×1 kernels and grouped ones stay on libtorch's kernel; so does everything without the direct path.</summary>
    [Theory]
    [InlineData(640, 3, 1, true)] // 5,760 products a sum: the blocked kernel is as fast
    [InlineData(2048, 1, 1, true)] // 1×1: the channels-last reorders would cost more than they gain
    [InlineData(1280, 3, 2, true)] // grouped
    [InlineData(1280, 3, 1, false)]
    public void OtherConvolutionsKeepLibtorchsKernel(int inChannels, int kernel, int groups, bool direct)
    {
        using var path = OneDnnPath(direct);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(43);
        using var conv = new Conv2d(inChannels, 16, kernel, padding: kernel / 2, groups: groups, generator: g);
        var x = Tensors.Randn([2, inChannels, 4, 4], g);
        using var noGrad = Autograd.NoGrad();
        using var profiler = OpProfiler.Start();
        var y = conv.Forward(x);
        var ops = profiler.Stop();
        Assert.DoesNotContain(ops, e => e.Name == "ld::convolution_matmul");
        Assert.Contains(ops, e => e.Name == "aten::mkldnn_convolution");
        AssertNearReference(Reference(conv, x), y, DType.Float32);
    }

    /// <summary>A frozen convolution keeps the packed matrix only; its weight comes back bit for bit, and an update reaches the next forward.</summary>
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.BFloat16)]
    public void AFrozenConvolutionKeepsOneCopyAndGivesItsWeightBack(DType dtype)
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(44);
        using var conv = new Conv2d(1280, 64, 3, padding: 1, generator: g).To(dtype).RequiresGrad(false);
        var original = conv.StateDict()["weight"].Clone();
        var oneCopy = conv.TensorBytes();
        var x = Tensors.Randn([2, 1280, 4, 4], g).To(dtype);
        Tensor first;
        using (Autograd.InferenceMode()) first = conv.Forward(x);
        // The packed matrix [64, 11,520] is the weight's bytes (both multiples of oneDNN's 64-wide blocks), plus its
        // 768-byte header and the released weight's one element.
        Assert.InRange(conv.TensorBytes(), oneCopy, oneCopy + 768 + 64);
        Assert.True(BitEqual(original, conv.StateDict()["weight"]));
        using var noGrad = Autograd.NoGrad();
        Assert.True(BitEqual(first, conv.Forward(x))); // released and packed again: the same values
        conv.Weight.Mul_(2.0); // an in-place update through the weight reaches the next packed forward
        using var doubled = conv.Forward(x);
        AssertNearReference(Reference(conv, x), doubled, dtype);
    }

    [Fact]
    public void AnInputOfOtherChannelsOrBelowTheKernelGetsOneLine()
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(45);
        using var conv = new Conv2d(1280, 8, 3, generator: g);
        using var noGrad = Autograd.NoGrad();
        conv.Forward(Tensors.Randn([1, 1280, 3, 3], g)); // packed
        var small = Assert.Throws<TorchException>(() => conv.Forward(Tensors.Randn([1, 1280, 2, 2], g)));
        Assert.Contains("smaller than the kernel", small.Message, StringComparison.Ordinal);
        var channels = Assert.Throws<TorchException>(() => conv.Forward(Tensors.Randn([1, 640, 3, 3], g)));
        Assert.Contains("1280 channels", channels.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', small.Message + channels.Message);
        // No rows of pixels, padding wide enough for an output: refused, as libtorch's own convolution refuses it.
        using var padded = new Conv2d(1280, 8, 3, padding: 2, generator: g);
        padded.Forward(Tensors.Randn([1, 1280, 3, 3], g));
        var empty = Assert.Throws<TorchException>(() => padded.Forward(Tensors.Randn([1, 1280, 0, 5], g)));
        Assert.Contains("at least one pixel", empty.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', empty.Message);
    }

    [Fact]
    public void TheMatmulConvolutionIsBitIdenticalForAGivenThreadCount()
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(46);
        using var conv = new Conv2d(1280, 32, 3, padding: 1, generator: g).RequiresGrad(false);
        var x = Tensors.Randn([2, 1280, 8, 8], g);
        using var noGrad = Autograd.NoGrad();
        Assert.True(BitEqual(conv.Forward(x), conv.Forward(x)));
    }
    /// <summary>
    /// A 1×1 convolution fed tokens (Transformer2DModel's projections) packs its weight as a linear layer's [O, C] matrix on
    /// the direct path: tokens and images both run on it, its weight comes back bit for bit, one copy is kept.
    /// </summary>
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.BFloat16)]
    public void AOneByOneConvolutionFedTokensRunsOnAMatrix(DType dtype)
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(47);
        using var conv = new Conv2d(320, 192, 1, generator: g) { FedTokens = true };
        conv.To(dtype).RequiresGrad(false);
        var original = conv.StateDict()["weight"].Clone();
        var oneCopy = conv.TensorBytes();
        var image = Tensors.Randn([2, 320, 5, 7], g).To(dtype);
        var expected = Reference(conv, image);
        var tokens = image.Permute(0, 2, 3, 1).Reshape(2, 35, 320); // a transposed view, as the model passes it
        using var noGrad = Autograd.NoGrad();
        using var profiler = OpProfiler.Start();
        var fromTokens = conv.TryForwardTokens(tokens);
        var fromImage = conv.Forward(image);
        var ops = profiler.Stop();
        Assert.NotNull(fromTokens);
        Assert.Equal([2L, 35, 192], fromTokens.Shape);
        AssertNearReference(expected, fromTokens.Reshape(2, 5, 7, 192).Permute(0, 3, 1, 2), dtype);
        AssertNearReference(expected, fromImage, dtype);
        Assert.True(fromImage.IsContiguous);
        Assert.Contains(ops, e => e.Name == "ld::linear_prepacked" && e.Calls == 2 && e.Flops == 2 * 2.0 * 70 * 320 * 192);
        Assert.DoesNotContain(ops, e => e.Name.Contains("conv", StringComparison.Ordinal));
        // The matrix (320 and 192: multiples of oneDNN's 64-wide blocks, no padding), its header, the released weight's element.
        Assert.InRange(conv.TensorBytes(), oneCopy, oneCopy + 768 + 64);
        Assert.True(BitEqual(original, conv.StateDict()["weight"])); // given back bit for bit, [192, 320, 1, 1]
        Assert.True(BitEqual(fromTokens, conv.TryForwardTokens(tokens)!)); // packed again
    }

    /// <summary>Where the matrix does not apply, TryForwardTokens leaves the image path to the caller (null).</summary>
    [Fact]
    public void TokensAreRefusedWithAutogradWithoutTheDirectPathOrForOtherConvolutions()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(48);
        var tokens = Tensors.Randn([2, 6, 64], g);
        using var fed = new Conv2d(64, 32, 1, generator: g) { FedTokens = true };
        using var notFed = new Conv2d(64, 32, 1, generator: g);
        using var threeByThree = new Conv2d(64, 32, 3, generator: g) { FedTokens = true };
        using (OneDnnPath(direct: true))
        {
            Assert.Null(fed.TryForwardTokens(tokens)); // autograd on
            using var noGrad = Autograd.NoGrad();
            Assert.Null(notFed.TryForwardTokens(tokens));
            Assert.Null(threeByThree.TryForwardTokens(tokens));
            Assert.Null(fed.TryForwardTokens(tokens.To(DType.BFloat16))); // another dtype than the weight's
            Assert.NotNull(fed.TryForwardTokens(tokens));
        }
        using (OneDnnPath(direct: false))
        {
            using var other = new Conv2d(64, 32, 1, generator: g) { FedTokens = true };
            using var noGrad = Autograd.NoGrad();
            Assert.Null(other.TryForwardTokens(tokens));
        }
    }
}

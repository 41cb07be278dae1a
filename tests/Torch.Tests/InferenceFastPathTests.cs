using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// The inference-only paths (no autograd) give what the autograd paths give: Conv2d with its weight
/// prepacked for oneDNN, and attention computed block by block.
/// </summary>
[Collection(LiveTensorCount.Name)]
public class InferenceFastPathTests
{
    /// <summary>
    /// The same oneDNN convolution, but the prepacked weight's layout is chosen without the input's size,
    /// so the kernel and its summation order may differ: float rounding, one bfloat16 step at most.
    /// </summary>
    private static void AssertSameConvolution(Tensor plain, Tensor fast)
    {
        Assert.Equal(plain.Shape, fast.Shape);
        Assert.Equal(plain.DType, fast.DType);
        using var scope = DisposeScope.Enter();
        var scale = plain.To(DType.Float64).Abs().Max().Item();
        var tolerance = (plain.DType == DType.BFloat16 ? 8e-3 : 1e-6) * scale;
        var diff = TensorAssert.MaxAbsDifference(plain, fast);
        Assert.True(diff <= tolerance, $"max abs diff {diff} (tolerance {tolerance})");
    }

    /// <summary>The conv module's output with autograd on (the plain path) and off (the prepacked one).</summary>
    private static (Tensor Plain, Tensor Fast) BothPaths(Conv2d conv, Tensor x)
    {
        Tensor plain;
        using (Autograd.EnableGrad()) plain = conv.Forward(x).Detach();
        using var noGrad = Autograd.NoGrad();
        return (plain, conv.Forward(x));
    }

    [Theory]
    [InlineData(DType.Float32, 1, 1, 1, 1)]
    [InlineData(DType.Float32, 2, 1, 1, 1)]
    [InlineData(DType.Float32, 1, 0, 1, 1)]
    [InlineData(DType.Float32, 2, 2, 2, 4)]
    [InlineData(DType.BFloat16, 1, 1, 1, 1)]
    public void PrepackedConvolutionEqualsThePlainOne(DType dtype, int stride, int padding, int dilation, int groups)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(3);
        using var conv = new Conv2d(64, 96, 3, stride: stride, padding: padding, dilation: dilation, groups: groups, generator: g).To(dtype);
        var x = Tensors.Randn([2, 64, 6, 6], g).To(dtype);
        var (plain, fast) = BothPaths(conv, x);
        AssertSameConvolution(plain, fast);
    }

    [Fact]
    public void APrepackedWeightFollowsInPlaceUpdatesConversionsAndLoadedStateDicts()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(4);
        using var conv = new Conv2d(32, 48, 3, padding: 1, generator: g);
        var x = Tensors.Randn([1, 32, 5, 5], g);
        using var noGrad = Autograd.NoGrad();
        var before = conv.Forward(x);

        conv.Weight.Mul_(2); // an optimiser step or an EMA copy is an in-place update like this one
        var (plain, fast) = BothPaths(conv, x);
        AssertSameConvolution(plain, fast);
        Assert.True(TensorAssert.MaxAbsDifference(before, fast) > 1e-3);

        using var other = new Conv2d(32, 48, 3, padding: 1, generator: g);
        conv.LoadStateDict(other.StateDict());
        AssertSameConvolution(other.Forward(x), conv.Forward(x));

        conv.To(DType.BFloat16);
        var xb = x.To(DType.BFloat16);
        (plain, fast) = BothPaths(conv, xb);
        Assert.Equal(DType.BFloat16, fast.DType);
        AssertSameConvolution(plain, fast);
    }

    [Fact]
    public void WeightsMadeInInferenceModeAreComputedThePlainWay()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(5);
        using var inference = Autograd.InferenceMode();
        using var conv = new Conv2d(16, 8, 3, padding: 1, generator: g);
        var x = Tensors.Randn([1, 16, 4, 4], g);
        var first = conv.Forward(x);
        conv.Weight.Mul_(-1); // no version counter on an inference tensor: nothing may be cached
        Assert.True(TensorAssert.MaxAbsDifference(first.Neg() + conv.Bias!.Reshape(1, 8, 1, 1) * 2, conv.Forward(x)) < 1e-5);
    }

    [Fact]
    public void PrepackedWeightsAreFreedWithTheModule()
    {
        var live = LiveTensorCount.Settled();
        using (var g = new Generator(6))
        using (var conv = new Conv2d(8, 8, 3, padding: 1, generator: g))
        using (var x = Tensors.Randn([1, 8, 4, 4], g))
        using (Autograd.NoGrad())
        {
            conv.Forward(x).Dispose();
            conv.Forward(x).Dispose();
            conv.To(DType.BFloat16);
            using var xb = x.To(DType.BFloat16);
            conv.Forward(xb).Dispose();
        }
        Assert.Equal(live, Tensor.LiveCount);
    }

    /// <summary>
    /// Shapes for the blocked attention: one block; several (batch × head) blocks with a short last one;
    /// query rows split within a head (its scores exceed a block); a single head; a cross-attention.
    /// </summary>
    [Theory]
    [InlineData(2, 3, 5, 7, 8)]
    [InlineData(40, 1, 300, 300, 16)]
    [InlineData(1, 3, 1100, 1100, 8)]
    [InlineData(1, 1, 5, 7, 8)]
    [InlineData(2, 8, 256, 77, 40)]
    public void BlockedAttentionEqualsTheMathDefinition(int batch, int heads, int queries, int keys, int dim)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(7);
        var q = Tensors.Randn([batch, heads, queries, dim], g);
        var k = Tensors.Randn([batch, heads, keys, dim], g);
        var v = Tensors.Randn([batch, heads, keys, dim], g);
        Tensor reference;
        using (Autograd.EnableGrad())
        {
            // q requiring grad keeps the autograd (unblocked) path
            using var qg = q.Clone();
            qg.RequiresGrad = true;
            reference = Functional.ScaledDotProductAttention(qg, k, v, scale: 0.2).Detach();
        }
        Tensor blocked;
        using (Autograd.NoGrad()) blocked = Functional.ScaledDotProductAttention(q, k, v, scale: 0.2);
        Assert.Equal(reference.Shape, blocked.Shape);
        Assert.True(TensorAssert.MaxAbsDifference(reference, blocked) < 1e-5, $"max abs diff {TensorAssert.MaxAbsDifference(reference, blocked)}");
    }
}

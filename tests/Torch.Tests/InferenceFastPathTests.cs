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

    /// <summary>
    /// An f32 linear layer of at least 128 rows runs as a oneDNN 1×1 convolution without autograd (native/src/linear.cpp,
    /// linear_onednn): the same product as OpenBLAS's sgemm up to float rounding; the profile shows which path ran.
    /// </summary>
    [Theory]
    [InlineData(true, 300)]
    [InlineData(false, 128)]
    public void OneDnnLinearEqualsTheBlasOne(bool bias, int rows)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(8);
        // A transposed (non-contiguous) input, as the attention's outputs are.
        var x = Tensors.Randn([2, 64, rows / 2], g).Transpose(1, 2);
        var w = Tensors.Randn([96, 64], g) * 0.1;
        var b = bias ? Tensors.Randn([96], g) : null;
        Tensor plain;
        using (Autograd.EnableGrad())
        {
            w.RequiresGrad = true; // autograd: at::linear, as in training
            plain = Functional.Linear(x, w, b).Detach();
            w.RequiresGrad = false;
        }
        Tensor fast;
        IReadOnlyList<OpProfileEntry> entries;
        using (Autograd.NoGrad())
        using (var profiler = OpProfiler.Start())
        {
            fast = Functional.Linear(x, w, b);
            entries = profiler.Stop();
        }
        Assert.Contains(entries, e => e.Name == "ld::linear_onednn" && e.Flops == 2.0 * rows * 64 * 96);
        Assert.Equal(plain.Shape, fast.Shape);
        var scale = plain.Abs().Max().Item();
        var diff = TensorAssert.MaxAbsDifference(plain, fast);
        Assert.True(diff <= 1e-6 * scale, $"max abs diff {diff} (output max {scale})");
    }

    [Fact]
    public void SmallLinearLayersAndBf16KeepAtLinear()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(9);
        var w = Tensors.Randn([32, 16], g);
        using var noGrad = Autograd.NoGrad();
        using var profiler = OpProfiler.Start();
        _ = Functional.Linear(Tensors.Randn([127, 16], g), w);
        _ = Functional.Linear(Tensors.Randn([512, 16], g).To(DType.BFloat16), w.To(DType.BFloat16));
        var entries = profiler.Stop();
        Assert.DoesNotContain(entries, e => e.Name == "ld::linear_onednn");
        Assert.Equal(2, Assert.Single(entries, e => e.Name == "aten::linear").Calls);
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
    [InlineData(2, 4, 600, 600, 40, true)]
    public void BlockedAttentionEqualsTheMathDefinition(int batch, int heads, int queries, int keys, int dim, bool inferenceMode = false)
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
        // Under inference mode too, as pipelines and `ldm bench` run it.
        using (inferenceMode ? Autograd.InferenceMode() : (IDisposable)Autograd.NoGrad()) blocked = Functional.ScaledDotProductAttention(q, k, v, scale: 0.2);
        Assert.Equal(reference.Shape, blocked.Shape);
        Assert.True(TensorAssert.MaxAbsDifference(reference, blocked) < 1e-5, $"max abs diff {TensorAssert.MaxAbsDifference(reference, blocked)}");
    }

    /// <summary>bf16 GroupNorm and LayerNorm without autograd run in f32 and round back (native/src/nn.cpp): the bf16 kernels' result to a bf16 step.</summary>
    [Fact]
    public void Bf16NormsWithoutAutogradEqualTheBf16Kernels()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(12);
        var x = Tensors.Randn([2, 64, 8, 8], g).To(DType.BFloat16);
        var w = (Tensors.Randn([64], g) * 0.1 + 1).To(DType.BFloat16);
        var b = (Tensors.Randn([64], g) * 0.1).To(DType.BFloat16);
        var tokens = x.Flatten(2).Transpose(1, 2).Contiguous(); // [2, 64, 64]
        Tensor plainGroup, plainLayer;
        using (Autograd.EnableGrad())
        {
            w.RequiresGrad = true; // autograd: libtorch's bf16 kernels
            plainGroup = Functional.GroupNorm(x, 16, w, b).Detach();
            plainLayer = Functional.LayerNorm(tokens, [64], w, b).Detach();
            w.RequiresGrad = false;
        }
        using var inference = Autograd.InferenceMode();
        var fastGroup = Functional.GroupNorm(x, 16, w, b);
        var fastLayer = Functional.LayerNorm(tokens, [64], w, b);
        Assert.Equal(DType.BFloat16, fastGroup.DType);
        Assert.Equal(DType.BFloat16, fastLayer.DType);
        foreach (var (plain, fast) in new[] { (plainGroup, fastGroup), (plainLayer, fastLayer) })
        {
            var scale = plain.To(DType.Float32).Abs().Max().Item();
            var diff = TensorAssert.MaxAbsDifference(plain.To(DType.Float32), fast.To(DType.Float32));
            Assert.True(diff <= 8e-3 * scale, $"max abs diff {diff} (output max {scale})");
        }
    }
}

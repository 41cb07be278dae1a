using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Blocks.Tests;

public class BlockTests
{
    /// <summary>The sinusoidal embedding against its formula evaluated in double precision.</summary>
    [Theory]
    [InlineData(32, true, 0.0)]
    [InlineData(32, false, 1.0)]
    [InlineData(7, false, 1.0)]
    public void TimestepsFollowTheSinusoidalFormula(int dim, bool flip, double shift)
    {
        using var scope = DisposeScope.Enter();
        double[] steps = [0, 1.5, 3, 41.25];
        var emb = Timesteps.Embed(Tensor.From(steps.Select(s => (float)s).ToArray(), steps.Length), dim, flip, shift).ToArray<float>();
        int half = dim / 2;
        for (int n = 0; n < steps.Length; n++)
        {
            var expected = new double[dim];
            for (int i = 0; i < half; i++)
            {
                var arg = steps[n] * Math.Exp(-Math.Log(10000) * i / (half - shift));
                expected[flip ? half + i : i] = Math.Sin(arg);
                expected[flip ? i : half + i] = Math.Cos(arg);
            }
            for (int j = 0; j < dim; j++) Assert.Equal(expected[j], emb[n * dim + j], 1e-5);
        }
    }

    [Fact]
    public void ScalarTimestepsAreBroadcastOverTheBatchAndCheckedOtherwise()
    {
        using var scope = DisposeScope.Enter();
        Assert.Equal([3L], TimestepInput.PerSample(Tensors.Scalar(5, DType.Int64), 3, Device.CPU).Shape);
        Assert.Equal([3L], TimestepInput.PerSample(Tensor.From(new[] { 5L }, 1), 3, Device.CPU).Shape);
        Assert.Equal([2L, 9], TimestepInput.PerSample(Tensor.From(new[] { 2L, 9L }, 2), 2, Device.CPU).ToArray<long>());
        Assert.Throws<ArgumentException>(() => TimestepInput.PerSample(Tensor.From(new[] { 1L, 2L }, 2), 3, Device.CPU));
    }

    [Fact]
    public void SlicedAttentionEqualsFullAttention()
    {
        TorchRuntime.ManualSeed(11);
        using var attention = new Attention(24, crossAttentionDim: 10, heads: 3, dimHead: 8);
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = Tensors.Randn([2, 5, 24], new Generator(1));
        var c = Tensors.Randn([2, 7, 10], new Generator(2));
        var full = attention.Forward(x, c);
        foreach (var size in new[] { 1, 2, 4, 6, 100 })
        {
            attention.SliceSize = size;
            Assert.True(TensorAssert.MaxAbsDifference(full, attention.Forward(x, c)) < 1e-6, $"slice size {size}");
        }
    }

    /// <summary>Multi-head attention written out with matmuls: the heads split the projections' channels in order.</summary>
    [Fact]
    public void AttentionIsScaledDotProductPerHead()
    {
        TorchRuntime.ManualSeed(12);
        using var attention = new Attention(8, heads: 2, dimHead: 4, bias: true);
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = Tensors.Randn([1, 3, 8], new Generator(3));
        var q = attention.ToQ.Forward(x);
        var k = attention.ToK.Forward(x);
        var v = attention.ToV.Forward(x);
        var heads = new List<Tensor>();
        for (int h = 0; h < 2; h++)
        {
            var qh = q.Narrow(2, h * 4, 4);
            var kh = k.Narrow(2, h * 4, 4);
            var vh = v.Narrow(2, h * 4, 4);
            heads.Add(Functional.Softmax(qh.MatMul(kh.Transpose(1, 2)) / 2.0, -1).MatMul(vh));
        }
        var expected = attention.ToOut.Forward(Tensor.Cat(heads, 2));
        Assert.True(TensorAssert.MaxAbsDifference(expected, attention.Forward(x)) < 1e-6);
    }

    [Fact]
    public void DownsampleWithoutPaddingPadsRightAndBottom()
    {
        using var down = new Downsample2D(1, useConv: true, padding: 0);
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = Tensors.Randn([1, 1, 6, 6], new Generator(4));
        var manual = Functional.Conv2d(Functional.Pad(x, [0, 1, 0, 1]), down.StateDict()["conv.weight"], down.StateDict()["conv.bias"], stride: 2);
        var y = down.Forward(x);
        Assert.Equal([1L, 1, 3, 3], y.Shape);
        Assert.True(y.Equal(manual));
        using var pool = new Downsample2D(3, useConv: false);
        Assert.Equal([1L, 3, 2, 2], pool.Forward(Tensors.Ones([1, 3, 4, 4])).Shape);
    }

    [Fact]
    public void UpsampleDoublesOrReachesTheRequestedSize()
    {
        using var up = new Upsample2D(2);
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([1, 2, 3, 4]);
        Assert.Equal([1L, 2, 6, 8], up.Forward(x).Shape);
        Assert.Equal([1L, 2, 5, 7], up.Forward(x, (5, 7)).Shape);
    }

    /// <summary>On the CPU a bf16 upsample skips diffusers' float32 round trip: the same values, bit for bit.</summary>
    [Fact]
    public void Bf16UpsampleOnTheCpuEqualsTheFloat32RoundTrip()
    {
        using var up = new Upsample2D(3, useConv: false);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(3);
        var x = Tensors.Randn([2, 3, 5, 4], g).To(DType.BFloat16);
        var doubled = up.Forward(x);
        var sized = up.Forward(x, (11, 7));
        Assert.Equal(DType.BFloat16, doubled.DType);
        Assert.True(doubled.Equal(Functional.Interpolate(x.Float(), 2.0).To(DType.BFloat16)));
        Assert.True(sized.Equal(Functional.Interpolate(x.Float(), (11, 7)).To(DType.BFloat16)));
    }

    [Fact]
    public void ResnetWithNewChannelCountHasAOneByOneShortcut()
    {
        using var resnet = new ResnetBlock2D(32, 64, tembChannels: 16, groups: 8);
        var state = resnet.StateDict();
        Assert.Equal([64L, 32, 1, 1], state["conv_shortcut.weight"].Shape);
        Assert.Equal([64L, 16], state["time_emb_proj.weight"].Shape);
        using var scaleShift = new ResnetBlock2D(32, 32, tembChannels: 16, groups: 8, timeEmbeddingNorm: "scale_shift");
        Assert.Equal([64L, 16], scaleShift.StateDict()["time_emb_proj.weight"].Shape);
        Assert.False(scaleShift.StateDict().ContainsKey("conv_shortcut.weight"));
        using var scope = DisposeScope.Enter();
        Assert.Equal([2L, 64, 4, 4], resnet.Forward(Tensors.Randn([2, 32, 4, 4]), Tensors.Randn([2, 16])).Shape);
        Assert.Throws<ConfigException>(() => new ResnetBlock2D(8, timeEmbeddingNorm: "ada_group", groups: 4));
    }

    [Fact]
    public void TransformerBlockNamesMatchDiffusers()
    {
        using var t = new Transformer2DModel(2, 16, 32, crossAttentionDim: 24, normNumGroups: 8);
        var names = t.StateDict().Keys.ToHashSet();
        foreach (var name in new[] { "norm.weight", "proj_in.weight", "proj_out.bias", "transformer_blocks.0.attn1.to_q.weight",
                     "transformer_blocks.0.attn2.to_k.weight", "transformer_blocks.0.attn2.to_out.0.bias", "transformer_blocks.0.ff.net.0.proj.weight",
                     "transformer_blocks.0.ff.net.2.weight", "transformer_blocks.0.norm3.bias" })
            Assert.Contains(name, names);
        Assert.DoesNotContain("transformer_blocks.0.attn1.to_q.bias", names); // attention_bias false
        Assert.Equal([24L], [t.StateDict()["transformer_blocks.0.attn2.to_v.weight"].Shape[1]]);
    }
    /// <summary>
    /// For inference on oneDNN's matmul the conv projections of an SD1.x transformer run on the tokens (Conv2d.FedTokens),
    /// and each block's three skip connections are added inside the projections before them (Linear.Forward(x, residual)):
    /// the same output as the convolutions and separate sums, which autograd's path still runs.
    /// </summary>
    [Theory]
    [InlineData(DType.Float32, 2e-6)]
    [InlineData(DType.BFloat16, 2e-2)]
    public void ConvProjectionsRunOnTheTokensForInference(DType dtype, double relative)
    {
        var direct = TorchRuntime.UseDirectOneDnn(true);
        try
        {
            Assert.True(TorchRuntime.DirectOneDnnActive, "the direct oneDNN path was not built (native/ needs libdnnl-dev)");
            using var t = new Transformer2DModel(2, 32, 64, crossAttentionDim: 24, normNumGroups: 8, generator: new Generator(5));
            t.To(dtype);
            using var scope = DisposeScope.Enter();
            var x = Tensors.Randn([2, 64, 6, 5], new Generator(1)).To(dtype);
            var c = Tensors.Randn([2, 4, 24], new Generator(2)).To(dtype);
            Tensor convolved;
            using (Autograd.EnableGrad()) convolved = t.Forward(x, c).Detach();
            using var noGrad = Autograd.NoGrad();
            using var profiler = OpProfiler.Start();
            var tokens = t.Forward(x, c);
            var ops = profiler.Stop();
            Assert.DoesNotContain(ops, e => e.Name.Contains("conv", StringComparison.Ordinal));
            Assert.Equal(1, ops.Where(e => e.Name is "aten::add" or "aten::add_").Sum(e => e.Calls)); // the image's skip connection
            Assert.True(tokens.IsContiguous);
            var scale = convolved.To(DType.Float64).Abs().Max().Item();
            var diff = TensorAssert.MaxAbsDifference(convolved.To(DType.Float64), tokens.To(DType.Float64));
            Assert.True(diff <= relative * scale, $"max abs diff {diff} (output max {scale})");
        }
        finally
        {
            direct.Dispose();
        }
    }
}

using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.NN;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Issue 19's inference paths for the transformer blocks: a Linear layer on its prepacked f32 weight (few rows) and
/// GEGLU's fused activation, each against the plain ops (the autograd paths), with one copy of each weight.
/// </summary>
[Collection(LiveTensorCount.Name)]
public class LinearAndGegluFastPathTests(ITestOutputHelper output)
{
    private static bool BitEqual(Tensor a, Tensor b) =>
        a.DType == b.DType && a.Shape.AsSpan().SequenceEqual(b.Shape) && TensorAssert.MaxAbsDifference(a, b) == 0;

    private static void AssertClose(Tensor plain, Tensor fast, double relative)
    {
        Assert.Equal(plain.Shape, fast.Shape);
        Assert.Equal(plain.DType, fast.DType);
        using var scope = DisposeScope.Enter();
        var scale = plain.To(DType.Float64).Abs().Max().Item();
        var diff = TensorAssert.MaxAbsDifference(plain.To(DType.Float64), fast.To(DType.Float64));
        Assert.True(diff <= relative * scale, $"max abs diff {diff} (output max {scale})");
    }

    /// <summary>The module with autograd on (at::linear) and off (the packed weight where the rows are few), and the ops that ran.</summary>
    private static (Tensor Plain, Tensor Fast, IReadOnlyList<OpProfileEntry> Ops) BothPaths(Linear linear, Tensor x)
    {
        Tensor plain;
        using (Autograd.EnableGrad()) plain = linear.Forward(x).Detach();
        using var noGrad = Autograd.NoGrad();
        using var profiler = OpProfiler.Start();
        var fast = linear.Forward(x);
        return (plain, fast, profiler.Stop());
    }

    /// <summary>
    /// Bytes a packed copy may hold beyond the weight's own: the released weight's one element (within 64 bytes, as for
    /// a convolution) and, on the direct oneDNN path, the packed tensor's 768-byte header (oneDNN's descriptor of the
    /// packed layout, native/src/onednn.cpp).
    /// </summary>
    private static long PackedSlack(bool direct) => 64 + (direct ? 768 : 0);

    /// <summary>Packs linear weights for oneDNN's matmul called directly or as linear.cpp does, for the scope, as the test says.</summary>
    private static IDisposable OneDnnPath(bool direct)
    {
        var mode = TorchRuntime.UseDirectOneDnn(direct);
        Assert.True(TorchRuntime.DirectOneDnnActive == direct, "the direct oneDNN path was not built (native/ needs libdnnl-dev)");
        return mode;
    }

    [Theory]
    [InlineData(2, 64, 96, true, false, true)]
    [InlineData(3, 33, 47, true, true, true)] // odd sizes, a transposed input
    [InlineData(16, 256, 320, false, false, true)]
    [InlineData(77, 768, 2560, true, true, true)]
    [InlineData(2, 64, 96, true, false, false)]
    [InlineData(3, 33, 47, true, true, false)]
    [InlineData(77, 768, 2560, true, true, false)]
    public void APrepackedLinearEqualsThePlainOne(int rows, int inFeatures, int outFeatures, bool bias, bool transposed, bool direct)
    {
        Assert.True(Linear.PackedIsFaster(rows, inFeatures, outFeatures));
        using var path = OneDnnPath(direct);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(31);
        using var linear = new Linear(inFeatures, outFeatures, bias, g);
        var x = transposed ? Tensors.Randn([inFeatures, rows], g).T() : Tensors.Randn([1, rows, inFeatures], g);
        var (plain, fast, ops) = BothPaths(linear, x);
        Assert.Contains(ops, e => e.Name == "ld::linear_prepacked" && e.Flops == 2.0 * rows * inFeatures * outFeatures);
        AssertClose(plain, fast, 2e-6);
        Assert.True(linear.TensorBytes() >= 2L * inFeatures * outFeatures * 4, $"{linear.TensorBytes()} bytes"); // trainable: both copies
    }

    [Fact]
    public void WithoutTheDirectPathManyRowsAndBf16KeepThePlainWeight()
    {
        using var path = OneDnnPath(direct: false);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(32);
        using var linear = new Linear(64, 96, generator: g);
        Assert.False(Linear.PackedIsFaster(300, 64, 96));
        var (plain, fast, ops) = BothPaths(linear, Tensors.Randn([300, 64], g));
        Assert.DoesNotContain(ops, e => e.Name == "ld::linear_prepacked");
        AssertClose(plain, fast, 1e-6);
        linear.To(DType.BFloat16);
        (_, _, ops) = BothPaths(linear, Tensors.Randn([4, 64], g).To(DType.BFloat16));
        Assert.DoesNotContain(ops, e => e.Name == "ld::linear_prepacked");
    }

    /// <summary>On oneDNN called directly, every f32 and bf16 product runs on the packed weight: many rows, odd sizes, bf16.</summary>
    [Theory]
    [InlineData(300, 64, 96, DType.Float32, 1e-6)]
    [InlineData(2048, 320, 640, DType.Float32, 2e-6)]
    [InlineData(4, 64, 96, DType.BFloat16, 1e-2)]
    [InlineData(300, 37, 53, DType.BFloat16, 1e-2)]
    [InlineData(154, 768, 320, DType.BFloat16, 1e-2)]
    public void OnTheDirectPathEveryProductRunsOnThePackedWeight(int rows, int inFeatures, int outFeatures, DType dtype, double relative)
    {
        using var path = OneDnnPath(direct: true);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(35);
        using var linear = new Linear(inFeatures, outFeatures, generator: g);
        linear.To(dtype);
        var x = Tensors.Randn([rows, inFeatures], g).To(dtype);
        var (plain, fast, ops) = BothPaths(linear, x);
        Assert.Contains(ops, e => e.Name == "ld::linear_prepacked" && e.Flops == 2.0 * rows * inFeatures * outFeatures);
        // bf16: both sides accumulate in f32 and round the output once (at::linear's bf16 matmul is oneDNN's too); the
        // tolerance is a few output roundings (2⁻⁸ relative each) at the output's largest value.
        AssertClose(plain, fast, relative);
        using var frozen = new Linear(inFeatures, outFeatures, generator: new Generator(35)).RequiresGrad(false);
        frozen.To(dtype);
        var oneCopy = frozen.TensorBytes();
        using (Autograd.InferenceMode()) Assert.True(BitEqual(fast, frozen.Forward(x)));
        // The packed copy only, at any rows; oneDNN pads the outputs to its 64-wide blocks (96 → 128), so the bytes
        // equal the weight's where the sizes are multiples of 64, as every layer of the SD models.
        static long Blocks(long n) => (n + 63) / 64 * 64;
        var padded = Blocks(inFeatures) * Blocks(outFeatures) * (dtype == DType.BFloat16 ? 2 : 4) + outFeatures * (dtype == DType.BFloat16 ? 2 : 4);
        if (inFeatures % 64 == 0 && outFeatures % 64 == 0) Assert.Equal(oneCopy, padded);
        Assert.InRange(frozen.TensorBytes(), oneCopy, padded + PackedSlack(direct: true));
    }

    /// <summary>A frozen layer keeps only the packed copy; its weight comes back bit for bit; without the direct oneDNN path a forward with many rows takes the plain one back.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AFrozenLinearKeepsOneCopyAndFollowsTheRows(bool direct)
    {
        using var path = OneDnnPath(direct);
        using var scope = DisposeScope.Enter();
        using var g = new Generator(33);
        using var frozen = new Linear(256, 320, generator: g).RequiresGrad(false);
        using var twin = new Linear(256, 320, generator: new Generator(33)).RequiresGrad(false);
        var original = frozen.StateDict()["weight"].Clone();
        var oneCopy = frozen.TensorBytes();
        var few = Tensors.Randn([2, 16, 256], g);
        var many = Tensors.Randn([2, 200, 256], g);
        Tensor fast;
        using (Autograd.InferenceMode()) fast = frozen.Forward(few);
        Assert.InRange(frozen.TensorBytes(), oneCopy, oneCopy + PackedSlack(direct)); // the packed copy, the bias, the released weight's element
        using var noGrad = Autograd.NoGrad();
        Tensor plain;
        using (Autograd.EnableGrad()) plain = twin.Forward(few).Detach(); // frozen: at::linear all the same
        AssertClose(plain, fast, 1e-6);
        Assert.True(BitEqual(original, frozen.StateDict()["weight"])); // given back bit for bit
        Assert.True(BitEqual(fast, frozen.Forward(few))); // released again, the same packed copy
        if (direct)
        {
            AssertClose(twin.Forward(many), frozen.Forward(many), 1e-6); // many rows: still the packed copy
            Assert.InRange(frozen.TensorBytes(), oneCopy, oneCopy + PackedSlack(direct));
        }
        else
        {
            Assert.True(BitEqual(twin.Forward(many), frozen.Forward(many))); // many rows: the plain weight back, one copy
            Assert.Equal(oneCopy, frozen.TensorBytes());
        }
        frozen.Weight.Add_(1.0); // a LoRA merge through the weight reaches the next packed forward
        twin.Weight.Add_(1.0);
        AssertClose(twin.Forward(few), frozen.Forward(few), 1e-6);
    }

    [Fact]
    public void PackedLinearAndFusedGegluAreBitIdenticalOnOneAndTwoThreads()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(34);
        using var linear = new Linear(320, 1280, generator: g).RequiresGrad(false);
        var x = Tensors.Randn([2, 8, 320], g); // 16 rows: the packed weight
        var h = Tensors.Randn([2, 1000, 2 * 80], g);
        Assert.True(Linear.PackedIsFaster(16, 320, 1280));
        var original = TorchRuntime.Threads;
        try
        {
            using var noGrad = Autograd.NoGrad();
            TorchRuntime.Threads = 1;
            var (y1, geglu1, geglu1b) = (linear.Forward(x), Functional.Geglu(h), Functional.Geglu(h.To(DType.BFloat16)));
            TorchRuntime.Threads = 2;
            var (y2, geglu2, geglu2b) = (linear.Forward(x), Functional.Geglu(h), Functional.Geglu(h.To(DType.BFloat16)));
            Assert.True(BitEqual(y1, y2));
            Assert.True(BitEqual(geglu1, geglu2));
            Assert.True(BitEqual(geglu1b, geglu2b));
        }
        finally
        {
            TorchRuntime.Threads = original;
        }
    }

    /// <summary>The chunk, GELU and product ops: diffusers' GEGLU as the at:: ops compute it.</summary>
    private static Tensor GegluOps(Tensor x)
    {
        using var scope = DisposeScope.Enter();
        var parts = x.Chunk(2, -1);
        return scope.Keep(parts[0] * Functional.Gelu(parts[1]));
    }

    [Theory]
    [InlineData(DType.Float32, 3, 37, false)] // odd width: the masked tail
    [InlineData(DType.Float32, 64, 160, true)] // a transposed input
    [InlineData(DType.BFloat16, 5, 21, false)]
    [InlineData(DType.BFloat16, 64, 320, true)]
    public void TheFusedGegluEqualsTheOps(DType dtype, int rows, int inner, bool transposed)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(35);
        var x = (transposed ? Tensors.Randn([2 * inner, rows], g).T() : Tensors.Randn([1, rows, 2 * inner], g)) * 3;
        x = x.To(dtype);
        Tensor fused, ops;
        IReadOnlyList<OpProfileEntry> entries;
        using (Autograd.NoGrad())
        using (var profiler = OpProfiler.Start())
        {
            fused = Functional.Geglu(x);
            entries = profiler.Stop();
        }
        // With autograd the native entry point runs the at:: ops (the fallback), and the gradient flows through them.
        using (Autograd.EnableGrad())
        {
            var leaf = x.Detach().Clone();
            leaf.RequiresGrad = true;
            var viaFallback = Functional.Geglu(leaf);
            viaFallback.Sum().Backward();
            Assert.NotNull(leaf.Grad);
            ops = viaFallback.Detach();
        }
        using (Autograd.NoGrad()) Assert.True(BitEqual(GegluOps(x), ops));
        if (Functional.FusedGegluAvailable) Assert.Contains(entries, e => e.Name == "ld::geglu");
        // f32: the same formula up to the vectorised exp; bf16: one rounding instead of two (≤ one bf16 step).
        AssertClose(ops, fused, dtype == DType.BFloat16 ? 8e-3 : 1e-6);
    }

    /// <summary>
    /// The fused GELU against libtorch's over a dense range with its tails, NaN and ±∞ (hidden = 1): within a few float
    /// steps where the GELU is not tiny, the same zeros, NaNs and infinities.
    /// </summary>
    [Fact]
    public void TheFusedGeluMatchesLibtorchsOverADenseRange()
    {
        using var scope = DisposeScope.Enter();
        var dense = Tensors.Linspace(-12, 12, 1 << 20);
        var specials = Tensor.From(new[] { 0f, -0f, 1e-30f, -1e-30f, 1e-45f, 20f, -20f, 1e4f, -1e4f, 3e38f, -3e38f,
            float.NaN, float.PositiveInfinity, float.NegativeInfinity }, 14);
        var gate = Tensor.Cat([dense, specials]);
        var input = Tensor.Cat([Tensors.OnesLike(gate), gate]).Reshape(1, -1); // [1, 2n]: hidden 1, gate
        using var noGrad = Autograd.NoGrad();
        var fused = Functional.Geglu(input).Reshape(-1).ToArray<float>();
        var reference = Functional.Gelu(gate).ToArray<float>();
        var gates = gate.ToArray<float>();
        double maxAbs = 0, maxUlp = 0;
        for (var i = 0; i < reference.Length; i++)
        {
            float a = fused[i], b = reference[i];
            if (float.IsNaN(b) || float.IsInfinity(b) || b == 0)
            {
                if (!(a.Equals(b) || a == b)) Assert.Fail($"gelu({gates[i]}): {a} against {b}");
                continue;
            }
            maxAbs = Math.Max(maxAbs, Math.Abs(a - (double)b));
            // ulps where 1 + erf(x/√2) does not cancel (x ≥ -1): below, both round the same cancellation differently.
            if (gates[i] >= -1 && Math.Abs(b) >= 1e-3)
                maxUlp = Math.Max(maxUlp, Math.Abs(BitConverter.SingleToInt32Bits(a) - (double)BitConverter.SingleToInt32Bits(b)));
        }
        output.WriteLine($"fused GELU vs libtorch over {reference.Length} inputs: max abs diff {maxAbs:E2}, max ulp (x ≥ -1, |gelu| ≥ 1e-3) {maxUlp}");
        Assert.True(maxAbs <= 1e-6, $"max abs diff {maxAbs}");
        if (Functional.FusedGegluAvailable) Assert.True(maxUlp <= 8, $"max ulp {maxUlp}");

    }
}

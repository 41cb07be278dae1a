using System.Runtime.Intrinsics.X86;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// The fused CPU attention kernel of inference (native/src/attention.cpp) and its fallback, libtorch's products and
/// softmax block by block (native/src/nn.cpp, attention_blocked), against softmax(q kᵀ · scale) v computed in float64
/// with the plain ops from the same (f32 or bf16) inputs.
/// </summary>
[Collection(ProcessWideStateCollection.Name)] // one test changes the intra-op thread count
public class FusedAttentionTests
{
    public enum Layout
    {
        Contiguous,
        /// <summary>q, k, v the [N, heads, len, E] head-split views of [N, len, heads, E] tensors, as diffusers' attention makes them.</summary>
        HeadSplit,
        /// <summary>k and v transposed views ([.., E, S] tensors): neither has contiguous rows, so both are gathered.</summary>
        Strided,
    }

    private static readonly bool CpuHasKernel =
        Avx512F.IsSupported && Avx512BW.IsSupported && Avx512DQ.IsSupported && Avx512F.VL.IsSupported;

    /// <summary>Whether the CPU has AVX512-BF16 too (the bf16 dot-product path): .NET has no intrinsics class for it, Linux names it in cpuinfo.</summary>
    private static readonly bool CpuHasBf16Dot =
        CpuHasKernel && File.Exists("/proc/cpuinfo") && File.ReadAllText("/proc/cpuinfo").Contains(" avx512_bf16");

    private static Tensor Input(Generator g, long n, long heads, long length, long dim, Layout layout, bool transposed, double std)
    {
        if (layout == Layout.HeadSplit) return (Tensors.Randn([n, length, heads, dim], g) * std).Transpose(1, 2);
        if (layout == Layout.Strided && transposed) return (Tensors.Randn([n, heads, dim, length], g) * std).Transpose(2, 3);
        return Tensors.Randn([n, heads, length, dim], g) * std;
    }

    /// <summary>q [n, heads, queries, dim], k [n, heads, keys, dim], v [n, heads, keys, dimV] in the layout, N(0, 1) · std for q and k.</summary>
    private static (Tensor Q, Tensor K, Tensor V) Inputs(Generator g, long n, long heads, long queries, long keys, long dim, long dimV,
        Layout layout, DType dtype = DType.Float32, double std = 1)
    {
        var q = Input(g, n, heads, queries, dim, layout, false, std).To(dtype);
        var k = Input(g, n, heads, keys, dim, layout, true, std).To(dtype);
        var v = Input(g, n, heads, keys, dimV, layout, true, 1).To(dtype);
        return (q, k, v);
    }

    private const double Eps = 1.0 / (1 << 24);

    /// <summary>The f32 worst case 4ε·(E·Σ|q_e k_e|·scale + S)·max|v| (see <see cref="F32MatchesTheFloat64Definition"/>).</summary>
    private static double WorstCase(Tensor q, Tensor k, Tensor v, double scale)
    {
        using var scope = DisposeScope.Enter();
        var products = (q.To(DType.Float64).Abs().MatMul(k.To(DType.Float64).Abs().Transpose(-1, -2)) * scale).Max().Item();
        return 4 * Eps * (q.Size(-1) * products + k.Size(-2)) * v.Abs().Max().Item();
    }

    /// <summary>softmax(q kᵀ · scale) v in float64 from the given inputs (exactly representable there).</summary>
    private static Tensor Reference(Tensor q, Tensor k, Tensor v, double scale)
    {
        using var scope = DisposeScope.Enter();
        var (q64, k64, v64) = (q.To(DType.Float64), k.To(DType.Float64), v.To(DType.Float64));
        return scope.Keep(Functional.Softmax(q64.MatMul(k64.Transpose(-1, -2)) * scale, -1).MatMul(v64));
    }

    /// <summary>Attention on the fused kernel or libtorch's blocked path; for the fused kernel's bf16, <paramref name="dot"/> picks the dot-product path or the widened one.</summary>
    private static Tensor Attend(Tensor q, Tensor k, Tensor v, double scale, bool fused, bool dot = false)
    {
        using var mode = TorchRuntime.UseFusedCpuAttention(fused);
        using var dotMode = TorchRuntime.UseBf16DotAttention(dot);
        Assert.Equal(fused && CpuHasKernel, TorchRuntime.FusedCpuAttentionActive);
        Assert.Equal(fused && dot && CpuHasBf16Dot, TorchRuntime.Bf16DotAttentionActive);
        using var inference = Autograd.InferenceMode();
        return Functional.ScaledDotProductAttention(q, k, v, scale: scale);
    }

    /// <summary>The float64 reference and both paths' results, which have q's dtype and the reference's shape.</summary>
    private static (Tensor Reference, Tensor Fused, Tensor Blocked) BothPaths(Tensor q, Tensor k, Tensor v, double scale)
    {
        var reference = Reference(q, k, v, scale);
        var fused = Attend(q, k, v, scale, fused: true);
        var blocked = Attend(q, k, v, scale, fused: false);
        foreach (var result in new[] { fused, blocked })
        {
            Assert.Equal(reference.Shape, result.Shape);
            Assert.Equal(q.DType, result.DType);
        }
        return (reference, fused, blocked);
    }

    /// <summary>
    /// f32, both paths. The error of either is float rounding of three steps: the scores (each a sum of E products;
    /// absolute error up to ~E·ε·Σ|q_e k_e|·scale, which <c>bound</c> takes as its scale), the exponentials (the
    /// fused kernel's expf is within ~2 ulp) and the sums over S keys (~√S·ε relative for random signs, S·ε at worst).
    /// So both must stay within the worst case 4ε·(E·Σ|qk|·scale + S)·max|v| of the float64 result, ε = 2⁻²⁴: for these
    /// shapes from 4.8e-6 (E = 2) to 2.5e-3 (E = 512) times max|v|. Measured (2026-12-05): fused 3.1e-8 to 3.5e-7 of
    /// max|v|, libtorch's 2.8e-8 to 2.2e-7. As that bound is loose, the fused kernel must also be no less accurate than
    /// libtorch's path: at most twice its error, or 8ε·max|v| (a few roundings of the output) where libtorch's is smaller.
    /// </summary>
    [Theory]
    [InlineData(1, 1, 5, 7, 3, 3, Layout.Contiguous)] // odd E below one vector, a single short tile
    [InlineData(2, 2, 16, 16, 8, 8, Layout.Contiguous)]
    [InlineData(1, 3, 9, 11, 2, 2, Layout.Strided)]
    [InlineData(1, 2, 13, 20, 4, 4, Layout.HeadSplit)]
    [InlineData(2, 3, 33, 77, 33, 33, Layout.HeadSplit)] // cross-attention over 77 text tokens, E across two vectors
    [InlineData(2, 8, 130, 130, 40, 40, Layout.HeadSplit)] // SD1.5's first level; L not a multiple of any row block
    [InlineData(1, 4, 100, 77, 80, 80, Layout.Strided)]
    [InlineData(1, 2, 64, 64, 160, 160, Layout.Contiguous)]
    [InlineData(1, 1, 150, 150, 512, 512, Layout.Contiguous)] // the VAE's mid-block attention: one head of 512
    [InlineData(1, 2, 70, 2100, 64, 64, Layout.Contiguous)] // more keys than one online-softmax block (512 here)
    [InlineData(1, 1, 40, 1500, 512, 512, Layout.Strided)] // 12 key blocks of 128 with E = 512
    [InlineData(2, 1, 17, 23, 16, 24, Layout.Contiguous)] // v narrower or wider than q and k
    [InlineData(1, 2, 19, 29, 24, 7, Layout.Strided)]
    public void F32MatchesTheFloat64Definition(int n, int heads, int queries, int keys, int dim, int dimV, Layout layout)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(19);
        var (q, k, v) = Inputs(g, n, heads, queries, keys, dim, dimV, layout);
        var scale = 1 / Math.Sqrt(dim);
        var (reference, fused, blocked) = BothPaths(q, k, v, scale);

        var vmax = v.Abs().Max().Item();
        var bound = WorstCase(q, k, v, scale);
        var fusedError = TensorAssert.MaxAbsDifference(fused, reference);
        var blockedError = TensorAssert.MaxAbsDifference(blocked, reference);
        Assert.True(fusedError <= bound, $"fused: max abs error {fusedError:e2} > bound {bound:e2}");
        Assert.True(blockedError <= bound, $"blocked: max abs error {blockedError:e2} > bound {bound:e2}");
        Assert.True(fusedError <= Math.Max(2 * blockedError, 8 * Eps * vmax),
            $"fused error {fusedError:e2} against libtorch's {blockedError:e2}");
    }

    /// <summary>
    /// Scores of ±80 and more (q and k scaled up): e^80 overflows nowhere because both paths subtract the row's
    /// maximum first; many probabilities underflow to 0 or to subnormals. The scores' own rounding then dominates
    /// (ε·80 ≈ 5e-6 of an exponent is that much relative error of a probability), hence the same bounds as above.
    /// Measured: max abs error 1.1e-5 to 3.8e-5 (max|v| 3.8 to 5.0), libtorch's path 1.8e-5 to 5.5e-5.
    /// </summary>
    [Theory]
    [InlineData(40, 300)]
    [InlineData(80, 77)]
    [InlineData(160, 1100)]
    public void LargeScoresStayFinite(int dim, int keys)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(23);
        var (q, k, v) = Inputs(g, 1, 2, 50, keys, dim, dim, Layout.Contiguous, std: Math.Sqrt(30));
        var scale = 1 / Math.Sqrt(dim);
        using (var noGrad = Autograd.NoGrad())
        {
            var scoreMax = (q.MatMul(k.Transpose(-1, -2)) * scale).Abs().Max().Item();
            Assert.True(scoreMax > 80, $"scores reach only {scoreMax}");
        }
        var reference = Reference(q, k, v, scale);
        var fused = Attend(q, k, v, scale, fused: true);
        Assert.Equal(1.0, fused.IsFinite().To(DType.Float64).Min().Item());
        var bound = WorstCase(q, k, v, scale);
        var error = TensorAssert.MaxAbsDifference(fused, reference);
        Assert.True(error <= bound, $"max abs error {error:e2} > bound {bound:e2}");
        Assert.True(error <= 2 * TensorAssert.MaxAbsDifference(Attend(q, k, v, scale, fused: false), reference) + 8 * Eps);
    }

    /// <summary>
    /// bf16 inputs on the widened path (<c>LDTORCH_ATTENTION_BF16_DOT=0</c>, or a CPU without AVX512-BF16): the fused kernel computes in f32 and rounds the output to nearest even, so each element is within
    /// half a bf16 step (2⁻⁸ relative) of the float64 result from the same bf16 inputs, plus the f32 error above
    /// (1e-4·max|v| covers it for these shapes). libtorch's bf16 path rounds the scores and probabilities to bf16 too,
    /// so it is only held to a few bf16 steps (4·2⁻⁸·max|v|). Measured max abs error: fused 1.3e-4 to 7.1e-4 of max|v|,
    /// libtorch's 4.0e-4 to 1.9e-3.
    /// </summary>
    [Theory]
    [InlineData(2, 8, 130, 130, 40, Layout.HeadSplit)]
    [InlineData(2, 5, 64, 77, 80, Layout.HeadSplit)]
    [InlineData(1, 2, 33, 60, 160, Layout.Strided)]
    [InlineData(1, 1, 100, 700, 512, Layout.Contiguous)]
    [InlineData(1, 2, 7, 9, 3, Layout.Contiguous)]
    public void Bf16IsTheFloat64ResultRoundedOnce(int n, int heads, int queries, int keys, int dim, Layout layout)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(29);
        var (q, k, v) = Inputs(g, n, heads, queries, keys, dim, dim, layout, DType.BFloat16);
        var scale = 1 / Math.Sqrt(dim);
        var (reference, fused, blocked) = BothPaths(q, k, v, scale);
        var vmax = v.To(DType.Float64).Abs().Max().Item();
        var excess = ((fused.To(DType.Float64) - reference).Abs() - reference.Abs() / 256 - 1e-4 * vmax).Max().Item();
        Assert.True(excess <= 0, $"an element is {excess:e2} beyond half a bf16 step of the float64 result");
        var blockedError = TensorAssert.MaxAbsDifference(blocked, reference);
        Assert.True(blockedError <= 4 * vmax / 256, $"libtorch's bf16 path: max abs error {blockedError:e2}");
    }

    /// <summary>
    /// bf16 inputs on the dot-product path (AVX512-BF16): q kᵀ from exact bf16 products summed in f32 (the f32 path's
    /// accuracy), then the probabilities rounded to bf16 (nearest even) for p · v, as PyTorch 2's CPU flash attention
    /// does. Each rounded probability is within 2⁻⁸ of its value relative, so the output moves by at most
    /// 2⁻⁸·Σ p_s·|v_s| / Σ p_s — the float64 softmax · |v|, element by element — before its own rounding to bf16 (half a
    /// step, 2⁻⁸·|result|), plus the f32 error (1e-4·max|v| as above). That is the bound for every element; it is at
    /// most 2·2⁻⁸·max|v|, half what libtorch's bf16 path is held to. The errors are random in sign, so the maximum stays
    /// near the widened path's, which the output's own rounding dominates: it must be at most twice that. Measured
    /// (2026-12-05), max abs error ÷ max|v|: dot path 9.8e-5 to 2.0e-3, widened path 9.8e-5 to 2.0e-3 (at most 1.58×
    /// apart), libtorch's bf16 path 2.6e-4 to 7.2e-2; root-mean-square error 1.0–1.4× the widened path's. The U-Net's
    /// attention shapes (SD1.5: tokens 1024/256/64 with E 40/80/160, self and cross over 77 text
    /// tokens), odd E, keys not a multiple of the 64-key tile, more keys than one online-softmax block, strided inputs,
    /// E = 512, and scores of ±80 and more.
    /// </summary>
    [Theory]
    // Two or four of the 16 heads at the larger levels: each head is computed alike, and the float64 tensors of all 16
    // (up to 128 MB) would leave glibc's heap holding tens of MB that NativeHeapTests' weight could then come from.
    [InlineData(1, 2, 1024, 1024, 40, Layout.HeadSplit, 1)]
    [InlineData(1, 2, 1024, 77, 40, Layout.HeadSplit, 1)]
    [InlineData(1, 4, 256, 256, 80, Layout.HeadSplit, 1)]
    [InlineData(1, 4, 256, 77, 80, Layout.HeadSplit, 1)]
    [InlineData(2, 8, 64, 64, 160, Layout.HeadSplit, 1)]
    [InlineData(2, 8, 64, 77, 160, Layout.HeadSplit, 1)]
    [InlineData(1, 2, 7, 9, 3, Layout.Contiguous, 1)] // odd E below one pair-vector, one short tile
    [InlineData(1, 3, 33, 77, 33, Layout.Strided, 1)] // odd E across two vectors, k and v gathered
    [InlineData(1, 2, 130, 2100, 64, Layout.Contiguous, 1)] // several key blocks, the last key odd
    [InlineData(1, 1, 100, 701, 512, Layout.Strided, 1)] // the VAE's head size, an odd number of keys
    [InlineData(1, 2, 50, 300, 40, Layout.Contiguous, 30)] // scores beyond ±80
    [InlineData(1, 2, 50, 1101, 160, Layout.HeadSplit, 30)]
    public void Bf16DotProductsRoundTheProbabilitiesOnce(int n, int heads, int queries, int keys, int dim, Layout layout, int variance)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(37);
        var (q, k, v) = Inputs(g, n, heads, queries, keys, dim, dim, layout, DType.BFloat16, Math.Sqrt(variance));
        var scale = 1 / Math.Sqrt(dim);
        var reference = Reference(q, k, v, scale);
        var dot = Attend(q, k, v, scale, fused: true, dot: true);
        Assert.Equal(reference.Shape, dot.Shape);
        Assert.Equal(DType.BFloat16, dot.DType);
        var v64 = v.To(DType.Float64);
        var vmax = v64.Abs().Max().Item();
        var weighted = Functional.Softmax(q.To(DType.Float64).MatMul(k.To(DType.Float64).Transpose(-1, -2)) * scale, -1).MatMul(v64.Abs());
        var error = (dot.To(DType.Float64) - reference).Abs();
        var excess = (error - reference.Abs() / 256 - weighted / 256 - 1e-4 * vmax).Max().Item();
        Assert.True(excess <= 0, $"an element is {excess:e2} beyond the bound");
        var widened = Attend(q, k, v, scale, fused: true, dot: false);
        var widenedError = TensorAssert.MaxAbsDifference(widened, reference);
        Assert.True(error.Max().Item() <= 2 * widenedError, $"max abs error {error.Max().Item():e2}, the widened path's {widenedError:e2}");
        if (CpuHasBf16Dot) Assert.False(dot.Equal(widened), "the dot-product path gave the widened path's bits");
    }

    /// <summary>Every output row is computed by one thread in a fixed order: the same bits with one and two intra-op threads.</summary>
    [Theory]
    [InlineData(DType.Float32, false)]
    [InlineData(DType.BFloat16, false)]
    [InlineData(DType.BFloat16, true)]
    public void ResultsAreBitIdenticalWhateverTheThreadCount(DType dtype, bool dot)
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(31);
        var (q, k, v) = Inputs(g, 2, 3, 300, 700, 40, 40, Layout.HeadSplit, dtype);
        var original = TorchRuntime.Threads;
        try
        {
            TorchRuntime.Threads = 1;
            var one = Attend(q, k, v, 0.15, fused: true, dot);
            TorchRuntime.Threads = 2;
            var two = Attend(q, k, v, 0.15, fused: true, dot);
            Assert.True(one.Equal(two), "1 and 2 threads gave different results");
            Assert.True(one.Equal(Attend(q, k, v, 0.15, fused: true, dot)), "a second run gave a different result");
        }
        finally
        {
            TorchRuntime.Threads = original;
        }
    }

    [Fact]
    public void TheSwitchIsPerThreadAndRestored()
    {
        var before = TorchRuntime.FusedCpuAttentionActive;
        using (TorchRuntime.UseFusedCpuAttention(false))
        {
            Assert.False(TorchRuntime.FusedCpuAttentionActive);
            bool other = false;
            var thread = new Thread(() => other = TorchRuntime.FusedCpuAttentionActive);
            thread.Start();
            thread.Join();
            Assert.Equal(before, other);
            using (TorchRuntime.UseFusedCpuAttention(true)) Assert.Equal(CpuHasKernel, TorchRuntime.FusedCpuAttentionActive);
            Assert.False(TorchRuntime.FusedCpuAttentionActive);
        }
        Assert.Equal(before, TorchRuntime.FusedCpuAttentionActive);
    }

    [Fact]
    public void TheBf16DotSwitchIsPerThreadAndRestored()
    {
        using var fused = TorchRuntime.UseFusedCpuAttention(true);
        var before = TorchRuntime.Bf16DotAttentionActive;
        using (TorchRuntime.UseBf16DotAttention(false))
        {
            Assert.False(TorchRuntime.Bf16DotAttentionActive);
            bool other = false;
            var thread = new Thread(() => other = TorchRuntime.Bf16DotAttentionActive);
            thread.Start();
            thread.Join();
            Assert.Equal(Environment.GetEnvironmentVariable("LDTORCH_ATTENTION_BF16_DOT") != "0" && CpuHasBf16Dot && CpuHasKernel
                && Environment.GetEnvironmentVariable("LDTORCH_FUSED_ATTENTION") != "0", other);
            using (TorchRuntime.UseBf16DotAttention(true)) Assert.Equal(CpuHasBf16Dot, TorchRuntime.Bf16DotAttentionActive);
            Assert.False(TorchRuntime.Bf16DotAttentionActive);
        }
        Assert.Equal(before, TorchRuntime.Bf16DotAttentionActive);
    }
}

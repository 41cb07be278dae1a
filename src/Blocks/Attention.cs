using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// diffusers' Attention (the processor-free core of attention_processor.Attention): multi-head
/// attention of queries from <c>hidden_states</c> over keys/values from <c>encoder_hidden_states</c>
/// (cross-attention) or from the same states (self-attention):
/// <code>
/// Q = to_q(x), K = to_k(c), V = to_v(c)                     split into heads of dim_head
/// out = to_out.0( softmax(Q Kᵀ / √dim_head) V )              heads merged back
/// out = (out + x) / rescale_output_factor                   with residual_connection
/// </code>
/// A 4-D input [N, C, H, W] (the attention of the pixel U-Net's and the VAE's blocks) is attended over its H·W
/// positions, after an optional GroupNorm, and returned in the same shape. <see cref="Processor"/> picks how the
/// product is computed, as diffusers' attention processors do.
/// </summary>
public sealed class Attention : Module
{
    private readonly GroupNorm? groupNorm;
    private readonly Linear toQ;
    private readonly Linear toK;
    private readonly Linear toV;
    private readonly Linear toOut;
    private readonly Dropout outDropout;

    public int Heads { get; }
    public int DimHead { get; }
    public double Scale { get; }
    public bool UpcastAttention { get; }
    public bool ResidualConnection { get; }
    public double RescaleOutputFactor { get; }

    /// <summary>
    /// Whether this attention replaces the old AttentionBlock (query/key/value/proj_attn weight names),
    /// which the loaders rename as diffusers' _convert_deprecated_attention_blocks does.
    /// </summary>
    public bool FromDeprecatedAttnBlock { get; }

    /// <summary>
    /// Attention slicing: when set, attention is computed for this many (batch × head) rows at a time,
    /// so the score matrix of only one slice is in memory at once. Null computes all at once. Only the
    /// <see cref="AttentionProcessor.ScaledDotProduct"/> processor slices (as diffusers' SlicedAttnProcessor replaces it).
    /// </summary>
    public int? SliceSize
    {
        get => sliceSize;
        set
        {
            if (value is < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "slice size must be at least 1");
            sliceSize = value;
        }
    }

    private int? sliceSize;

    /// <summary>How softmax(Q Kᵀ · scale) V is computed; <see cref="AttentionProcessor.ScaledDotProduct"/> unless set.</summary>
    public AttentionProcessor Processor { get; set; } = AttentionProcessor.ScaledDotProduct;

    public Attention(long queryDim, long? crossAttentionDim = null, int heads = 8, int dimHead = 64, double dropout = 0,
        bool bias = false, bool upcastAttention = false, int? normNumGroups = null, double eps = 1e-5, bool outBias = true,
        double rescaleOutputFactor = 1, bool residualConnection = false, long? outDim = null, bool fromDeprecatedAttnBlock = false,
        Generator? generator = null)
    {
        if (heads < 1 || dimHead < 1) throw new ArgumentException($"attention needs at least one head of at least one channel (heads {heads}, dim_head {dimHead})");
        Heads = heads;
        DimHead = dimHead;
        Scale = 1 / Math.Sqrt(dimHead);
        UpcastAttention = upcastAttention;
        ResidualConnection = residualConnection;
        RescaleOutputFactor = rescaleOutputFactor;
        FromDeprecatedAttnBlock = fromDeprecatedAttnBlock;

        long inner = (long)heads * dimHead;
        long context = crossAttentionDim ?? queryDim;
        if (normNumGroups is { } g) groupNorm = RegisterModule("group_norm", new GroupNorm(g, queryDim, eps));
        toQ = RegisterModule("to_q", new Linear(queryDim, inner, bias, generator));
        toK = RegisterModule("to_k", new Linear(context, inner, bias, generator));
        toV = RegisterModule("to_v", new Linear(context, inner, bias, generator));
        toOut = new Linear(inner, outDim ?? queryDim, outBias, generator);
        outDropout = new Dropout(dropout);
        RegisterModule("to_out", new ModuleList(toOut, outDropout));
    }

    public Linear ToQ => toQ;
    public Linear ToK => toK;
    public Linear ToV => toV;
    public Linear ToOut => toOut;

    // diffusers' _convert_deprecated_attention_blocks: the old AttentionBlock named its projections
    // query, key, value and proj_attn (VAEs saved before diffusers 0.14 still do).
    private static readonly (string Old, string New)[] DeprecatedNames =
        [("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0")];

    protected override void UpgradeStateDict(string prefix, IDictionary<string, Tensor> stateDict)
    {
        if (!FromDeprecatedAttnBlock) return;
        foreach (var (old, replacement) in DeprecatedNames)
            foreach (var kind in new[] { "weight", "bias" })
                if (stateDict.Remove($"{prefix}{old}.{kind}", out var t)) stateDict[$"{prefix}{replacement}.{kind}"] = t;
    }

    /// <summary>
    /// Attends <paramref name="hidden"/> ([N, L, C] or [N, C, H, W]) over
    /// <paramref name="encoderHiddenStates"/> [N, S, cross_attention_dim], or over itself when null.
    /// </summary>
    public Tensor Forward(Tensor hidden, Tensor? encoderHiddenStates = null) => Forward(hidden, encoderHiddenStates, null);

    /// <summary>
    /// Forward(hidden, encoderHiddenStates) + <paramref name="residual"/> (a transformer block's skip connection) for
    /// tokens [N, L, C]: where the output dropout is inactive, the sum is added inside the output projection
    /// (<see cref="Linear.Forward(Tensor, Tensor)"/>), not in a pass of its own.
    /// </summary>
    public Tensor Forward(Tensor hidden, Tensor? encoderHiddenStates, Tensor? residual)
    {
        using var scope = DisposeScope.Enter();
        var shape = hidden.Shape;
        var x = hidden;
        if (shape.Length == 4) x = hidden.Reshape(shape[0], shape[1], shape[2] * shape[3]).Transpose(1, 2);
        if (groupNorm is not null) x = groupNorm.Forward(x.Transpose(1, 2)).Transpose(1, 2);

        var context = encoderHiddenStates ?? x;
        var (query, key, value) = (toQ.Forward(x), toK.Forward(context), toV.Forward(context));
        var attended = Processor == AttentionProcessor.Classic ? AttendClassic(query, key, value) : Attend(query, key, value);
        if (residual is not null && shape.Length == 3 && !ResidualConnection && RescaleOutputFactor == 1 && !outDropout.Active)
            return scope.Keep(toOut.Forward(attended, residual));
        var output = outDropout.Forward(toOut.Forward(attended));

        if (shape.Length == 4) output = output.Transpose(-1, -2).Reshape(shape);
        if (ResidualConnection) output = output + hidden;
        if (RescaleOutputFactor != 1) output = output / RescaleOutputFactor;
        if (residual is not null) output = output + residual;
        return scope.Keep(output);
    }

    /// <summary>softmax(Q Kᵀ · scale) V per head for Q [N, L, heads·d], K and V [N, S, heads·d] → [N, L, heads·d].</summary>
    private Tensor Attend(Tensor query, Tensor key, Tensor value)
    {
        long n = query.Size(0), l = query.Size(1), s = key.Size(1);
        var dtype = query.DType;
        var upcast = UpcastAttention && dtype != DType.Float32;
        Tensor SplitHeads(Tensor t, long length) =>
            (upcast ? t.Float() : t).Reshape(n, length, Heads, DimHead).Transpose(1, 2); // [N, heads, len, d]
        var q = SplitHeads(query, l);
        var k = SplitHeads(key, s);
        var v = SplitHeads(value, s);

        Tensor o;
        if (sliceSize is not { } size || size >= n * Heads)
        {
            o = Functional.ScaledDotProductAttention(q, k, v, scale: Scale);
        }
        else
        {
            // Slices over the flattened (batch × head) rows, as diffusers' SlicedAttnProcessor.
            var q3 = q.Reshape(n * Heads, l, DimHead);
            var k3 = k.Reshape(n * Heads, s, DimHead);
            var v3 = v.Reshape(n * Heads, s, DimHead);
            var parts = new List<Tensor>();
            for (long start = 0; start < n * Heads; start += size)
            {
                long length = Math.Min(size, n * Heads - start);
                using var slice = DisposeScope.Enter();
                var part = Functional.ScaledDotProductAttention(q3.Narrow(0, start, length), k3.Narrow(0, start, length),
                    v3.Narrow(0, start, length), scale: Scale);
                parts.Add(slice.Keep(part));
            }
            o = Tensor.Cat(parts, 0).Reshape(n, Heads, l, DimHead);
        }
        o = o.Transpose(1, 2).Reshape(n, l, (long)Heads * DimHead);
        return upcast ? o.To(dtype) : o;
    }

    /// <summary>
    /// diffusers' AttnProcessor for Q [N, L, heads·d], K and V [N, S, heads·d] → [N, L, heads·d], all rows at once:
    /// heads go to the batch (head_to_batch_dim), scores = baddbmm(empty, Q, Kᵀ, β = 0, α = scale) as
    /// get_attention_scores computes them, softmax, bmm with V, heads back (batch_to_head_dim).
    /// </summary>
    private Tensor AttendClassic(Tensor query, Tensor key, Tensor value)
    {
        var (q, k, v) = (HeadsToBatch(query), HeadsToBatch(key), HeadsToBatch(value));
        var unused = Tensors.Empty([q.Size(0), q.Size(1), k.Size(1)], q.DType, q.Device);
        var probabilities = Functional.Softmax(unused.Baddbmm(q, k.Transpose(-1, -2), beta: 0, alpha: Scale), -1);
        return BatchToHeads(probabilities.Bmm(v));
    }

    // [N, L, heads·d] → [N·heads, L, d]; one head keeps the tensor as it is.
    private Tensor HeadsToBatch(Tensor x)
    {
        if (Heads == 1) return x;
        var (n, l, dim) = (x.Size(0), x.Size(1), x.Size(2));
        return x.Reshape(n, l, Heads, dim / Heads).Permute(0, 2, 1, 3).Reshape(n * Heads, l, dim / Heads);
    }

    // [N·heads, L, d] → [N, L, heads·d].
    private Tensor BatchToHeads(Tensor x)
    {
        if (Heads == 1) return x;
        var (nh, l, d) = (x.Size(0), x.Size(1), x.Size(2));
        return x.Reshape(nh / Heads, Heads, l, d).Permute(0, 2, 1, 3).Reshape(nh / Heads, l, d * Heads);
    }
}

/// <summary>diffusers' attention processors: the ways <see cref="Attention"/> computes softmax(Q Kᵀ · scale) V.</summary>
public enum AttentionProcessor
{
    /// <summary>AttnProcessor2_0: the fused scaled_dot_product_attention (math path on old libtorch), sliced on request.</summary>
    ScaledDotProduct,

    /// <summary>
    /// AttnProcessor: per (batch × head) row, scores = baddbmm(β = 0, α = scale) of Q and Kᵀ, softmax, bmm with V. The
    /// VAE computes its attention this way; its rounding differs from the fused kernel's in the last bits.
    /// </summary>
    Classic,
}

public static class AttentionSlicing
{
    /// <summary>Sets <see cref="Attention.Processor"/> on every attention layer of <paramref name="model"/> (diffusers' set_attn_processor).</summary>
    public static void SetAttentionProcessor(this Module model, AttentionProcessor processor)
    {
        foreach (var (_, module) in model.NamedModules())
            if (module is Attention attention) attention.Processor = processor;
    }

    /// <summary>
    /// Sets <see cref="Attention.SliceSize"/> on every attention layer of <paramref name="model"/>: attention is then
    /// computed <paramref name="sliceSize"/> (batch × head) rows at a time, trading speed for peak memory.
    /// Null turns slicing off.
    /// </summary>
    public static void SetAttentionSlice(this Module model, int? sliceSize)
    {
        foreach (var (_, module) in model.NamedModules())
            if (module is Attention attention) attention.SliceSize = sliceSize;
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>GEGLU (Shazeer 2020): one projection to twice the width, split into a value and a gate: h · gelu(gate).</summary>
public sealed class GEGLU : Module<Tensor, Tensor>
{
    private readonly Linear proj;

    public GEGLU(long dimIn, long dimOut, bool bias = true, Generator? generator = null) =>
        proj = RegisterModule("proj", new Linear(dimIn, dimOut * 2, bias, generator));

    public Linear Proj => proj;

    /// <summary>hidden · gelu(gate) of proj(x) = [hidden, gate]: one fused native pass without autograd (Functional.Geglu).</summary>
    public override Tensor Forward(Tensor input)
    {
        using var projected = proj.Forward(input);
        return Functional.Geglu(projected);
    }
}

/// <summary>diffusers' FeedForward with the GEGLU activation: net.0 (GEGLU, dim → inner), net.1 dropout, net.2 Linear(inner → dim_out).</summary>
public sealed class FeedForward : Module<Tensor, Tensor>
{
    private readonly Sequential net;

    public FeedForward(long dim, long? dimOut = null, int mult = 4, double dropout = 0, string activationFn = "geglu",
        bool finalDropout = false, long? innerDim = null, bool bias = true, Generator? generator = null)
    {
        if (activationFn != "geglu") throw ConfigErrors.Unsupported("activation_fn", activationFn, "\"geglu\"");
        var inner = innerDim ?? dim * mult;
        (activation, innerDropout, output) = (new GEGLU(dim, inner, bias, generator), new Dropout(dropout), new Linear(inner, dimOut ?? dim, bias, generator));
        net = RegisterModule("net", new Sequential(activation, innerDropout, output));
        if (finalDropout) net.Add(this.finalDropout = new Dropout(dropout));
    }

    private readonly GEGLU activation;
    private readonly Dropout innerDropout;
    private readonly Linear output;
    private readonly Dropout? finalDropout;

    public override Tensor Forward(Tensor input) => net.Forward(input);

    /// <summary>
    /// Forward(input) + <paramref name="residual"/> (the block's skip connection): without an active final dropout, the
    /// sum is added inside the output projection (<see cref="Linear.Forward(Tensor, Tensor)"/>).
    /// </summary>
    public Tensor Forward(Tensor input, Tensor residual)
    {
        using var scope = DisposeScope.Enter();
        if (finalDropout is { Active: true }) return scope.Keep(Forward(input) + residual);
        var hidden = innerDropout.Forward(activation.Forward(input));
        return scope.Keep(output.Forward(hidden, residual));
    }
}

/// <summary>
/// diffusers' BasicTransformerBlock with layer norms (pre-norm, residual after each part):
/// <code>
/// x = attn1(norm1(x)) + x                self-attention (cross-attention when only_cross_attention)
/// x = attn2(norm2(x), context) + x       cross-attention to the text states
/// x = ff(norm3(x)) + x                   GEGLU feed-forward
/// </code>
/// </summary>
public sealed class BasicTransformerBlock : Module
{
    private readonly LayerNorm norm1;
    private readonly Attention attn1;
    private readonly LayerNorm? norm2;
    private readonly Attention? attn2;
    private readonly LayerNorm norm3;
    private readonly FeedForward ff;

    public bool OnlyCrossAttention { get; }

    public BasicTransformerBlock(long dim, int numAttentionHeads, int attentionHeadDim, double dropout = 0,
        long? crossAttentionDim = null, string activationFn = "geglu", bool attentionBias = false, bool onlyCrossAttention = false,
        bool doubleSelfAttention = false, bool upcastAttention = false, bool normElementwiseAffine = true, double normEps = 1e-5,
        bool finalDropout = false, long? ffInnerDim = null, bool ffBias = true, bool attentionOutBias = true, Generator? generator = null)
    {
        OnlyCrossAttention = onlyCrossAttention;
        norm1 = RegisterModule("norm1", new LayerNorm(dim, normEps, normElementwiseAffine));
        attn1 = RegisterModule("attn1", new Attention(dim, onlyCrossAttention ? crossAttentionDim : null, numAttentionHeads,
            attentionHeadDim, dropout, attentionBias, upcastAttention, outBias: attentionOutBias, generator: generator));
        if (crossAttentionDim is not null || doubleSelfAttention)
        {
            norm2 = RegisterModule("norm2", new LayerNorm(dim, normEps, normElementwiseAffine));
            attn2 = RegisterModule("attn2", new Attention(dim, doubleSelfAttention ? null : crossAttentionDim, numAttentionHeads,
                attentionHeadDim, dropout, attentionBias, upcastAttention, outBias: attentionOutBias, generator: generator));
        }
        norm3 = RegisterModule("norm3", new LayerNorm(dim, normEps, normElementwiseAffine));
        ff = RegisterModule("ff", new FeedForward(dim, dropout: dropout, activationFn: activationFn, finalDropout: finalDropout,
            innerDim: ffInnerDim, bias: ffBias, generator: generator));
    }

    public Attention Attn1 => attn1;
    public Attention? Attn2 => attn2;

    /// <summary>Tokens [N, L, dim] attending to <paramref name="encoderHiddenStates"/> [N, S, cross_attention_dim].</summary>
    public Tensor Forward(Tensor hidden, Tensor? encoderHiddenStates = null)
    {
        using var scope = DisposeScope.Enter();
        // Each skip connection is added inside the projection before it where it can (Linear.Forward(x, residual)).
        var x = attn1.Forward(norm1.Forward(hidden), OnlyCrossAttention ? encoderHiddenStates : null, hidden);
        if (attn2 is not null) x = attn2.Forward(norm2!.Forward(x), encoderHiddenStates, x);
        x = ff.Forward(norm3.Forward(x), x);
        return scope.Keep(x);
    }
}

/// <summary>
/// diffusers' Transformer2DModel for continuous (image) input, the "SpatialTransformer" of LDM:
/// GroupNorm (eps 1e-6) → proj_in (1×1 conv, or Linear on tokens with use_linear_projection) →
/// BasicTransformerBlocks over the H·W tokens → proj_out → + input.
/// </summary>
public sealed class Transformer2DModel : Module
{
    private readonly GroupNorm norm;
    private readonly Module<Tensor, Tensor> projIn;
    private readonly ModuleList<BasicTransformerBlock> transformerBlocks;
    private readonly Module<Tensor, Tensor> projOut;

    public bool UseLinearProjection { get; }

    public Transformer2DModel(int numAttentionHeads, int attentionHeadDim, long inChannels, long? outChannels = null,
        int numLayers = 1, double dropout = 0, int normNumGroups = 32, long? crossAttentionDim = null, bool attentionBias = false,
        string activationFn = "geglu", bool onlyCrossAttention = false, bool doubleSelfAttention = false,
        bool upcastAttention = false, bool useLinearProjection = false, bool normElementwiseAffine = true, double normEps = 1e-5,
        Generator? generator = null)
    {
        UseLinearProjection = useLinearProjection;
        long inner = (long)numAttentionHeads * attentionHeadDim;
        long outC = outChannels ?? inChannels;
        norm = RegisterModule("norm", new GroupNorm(normNumGroups, inChannels, 1e-6));
        projIn = RegisterModule<Module<Tensor, Tensor>>("proj_in",
            useLinearProjection ? new Linear(inChannels, inner, generator: generator) : new Conv2d(inChannels, inner, 1, generator: generator) { FedTokens = true });
        transformerBlocks = RegisterModule("transformer_blocks", new ModuleList<BasicTransformerBlock>(
            Enumerable.Range(0, numLayers).Select(_ => new BasicTransformerBlock(inner, numAttentionHeads, attentionHeadDim, dropout,
                crossAttentionDim, activationFn, attentionBias, onlyCrossAttention, doubleSelfAttention, upcastAttention,
                normElementwiseAffine, normEps, generator: generator))));
        projOut = RegisterModule<Module<Tensor, Tensor>>("proj_out",
            useLinearProjection ? new Linear(inner, outC, generator: generator) : new Conv2d(inner, outC, 1, generator: generator) { FedTokens = true });
    }

    public IReadOnlyList<BasicTransformerBlock> TransformerBlocks => transformerBlocks;

    /// <summary>Feature map [N, C, H, W] attending to <paramref name="encoderHiddenStates"/>; returns [N, C, H, W].</summary>
    public Tensor Forward(Tensor hidden, Tensor? encoderHiddenStates = null)
    {
        using var scope = DisposeScope.Enter();
        var shape = hidden.Shape;
        long n = shape[0], h = shape[2], w = shape[3];
        var normed = norm.Forward(hidden);
        // Tokens [N, H·W, C]: the 1×1 conv projects before flattening (or, for inference, the same product on the
        // channels-last view, Conv2d.FedTokens: its output is the tokens, no copy made where it does not apply), the
        // Linear after.
        var x = UseLinearProjection ? projIn.Forward(Flatten(normed))
            : ((Conv2d)projIn).TryForwardTokens(normed.Permute(0, 2, 3, 1)) is { } projected ? projected.Reshape(n, h * w, projected.Size(-1))
            : Flatten(projIn.Forward(normed));

        foreach (var block in transformerBlocks)
        {
            var next = block.Forward(x, encoderHiddenStates);
            x.Dispose();
            x = next;
        }

        // The image's skip connection after a copy to NCHW: one sum reading the tokens through the permuted view (one
        // pass instead of two) took longer than both in the U-Net (bf16 at 32², 0.43 against ~0.3 ms a call: libtorch's
        // element-wise loop gathers along the channels), and oneDNN's reorder copied no faster than libtorch (0.19–0.21
        // against 0.16 ms; bench/README.md, session 10).
        var output = UseLinearProjection ? ToImage(projOut.Forward(x))
            : ((Conv2d)projOut).TryForwardTokens(x) is { } tokens ? ToImage(tokens)
            : projOut.Forward(ToImage(x));
        return scope.Keep(output + hidden);

        Tensor Flatten(Tensor image) => image.Permute(0, 2, 3, 1).Reshape(n, h * w, image.Size(1));
        Tensor ToImage(Tensor t) => t.Reshape(n, h, w, t.Size(-1)).Permute(0, 3, 1, 2).Contiguous();
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// A U-Net encoder stage. Returns the states the decoder receives over the skip connections: one per
/// resnet (after its attention, if any), plus one after downsampling; the last is the stage's output.
/// </summary>
public interface IDownBlock
{
    Tensor[] Forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates = null);
}

/// <summary>
/// A U-Net decoder stage: each of its <see cref="ResnetCount"/> resnets takes the concatenation of the
/// running state and one skip state, consumed from the end of <c>skips</c>.
/// </summary>
public interface IUpBlock
{
    int ResnetCount { get; }

    Tensor Forward(Tensor hidden, IReadOnlyList<Tensor> skips, Tensor temb, Tensor? encoderHiddenStates = null,
        (long H, long W)? upsampleSize = null);
}

/// <summary>The U-Net's (and the VAE's) bottleneck; the VAE has no timestep embedding (temb null).</summary>
public interface IMidBlock
{
    Tensor Forward(Tensor hidden, Tensor? temb, Tensor? encoderHiddenStates = null);
}

/// <summary>
/// Settings every resnet of a U-Net or VAE shares (diffusers passes them to each block as temb_channels and resnet_*).
/// The VAE's blocks have no timestep embedding: <see cref="TembChannels"/> null.
/// </summary>
public sealed record ResnetSettings(long? TembChannels, double Eps = 1e-6, string ActFn = "swish", int Groups = 32,
    double Dropout = 0, string TimeScaleShift = "default", double OutputScaleFactor = 1)
{
    public ResnetBlock2D Create(long inChannels, long outChannels, bool up = false, bool down = false, Generator? generator = null) =>
        new(inChannels, outChannels, TembChannels, Groups, eps: Eps, dropout: Dropout, nonLinearity: ActFn,
            timeEmbeddingNorm: TimeScaleShift, outputScaleFactor: OutputScaleFactor, up: up, down: down, generator: generator);

    /// <summary>A stage's resnets: the first maps <paramref name="inChannels"/> to <paramref name="outChannels"/>, the others keep them.</summary>
    public ModuleList<ResnetBlock2D> CreateStack(int numLayers, long inChannels, long outChannels, Generator? generator = null) =>
        new(Enumerable.Range(0, numLayers).Select(i => Create(i == 0 ? inChannels : outChannels, outChannels, generator: generator)));

    /// <summary>
    /// The self-attention of the pixel U-Net's and the VAE's blocks (the deprecated AttentionBlock,
    /// _from_deprecated_attn_block): one residual, group-normed attention with biases.
    /// </summary>
    public Attention CreateSelfAttention(long channels, int attentionHeadDim, int? normGroups, Generator? generator = null) =>
        new(channels, heads: (int)(channels / attentionHeadDim), dimHead: attentionHeadDim, bias: true, normNumGroups: normGroups,
            eps: Eps, rescaleOutputFactor: OutputScaleFactor, residualConnection: true, fromDeprecatedAttnBlock: true, generator: generator);
}

/// <summary>Settings of the cross-attention transformers (Transformer2DModel) in a conditional U-Net stage.</summary>
public sealed record CrossAttentionSettings(int NumAttentionHeads, long CrossAttentionDim, int TransformerLayers = 1,
    bool UseLinearProjection = false, bool OnlyCrossAttention = false, bool UpcastAttention = false)
{
    public Transformer2DModel Create(long channels, int groups, int? layers = null, Generator? generator = null) =>
        new(NumAttentionHeads, (int)(channels / NumAttentionHeads), channels, numLayers: layers ?? TransformerLayers,
            normNumGroups: groups, crossAttentionDim: CrossAttentionDim, onlyCrossAttention: OnlyCrossAttention,
            upcastAttention: UpcastAttention, useLinearProjection: UseLinearProjection, generator: generator);
}

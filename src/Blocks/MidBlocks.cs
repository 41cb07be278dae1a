using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// Bottleneck of the pixel U-Net and of the VAE's encoder and decoder: resnet, then (attention, resnet) pairs. Used
/// without attention ("UNetMidBlock2D" in a conditional U-Net; the VAE's mid_block_add_attention false).
/// </summary>
public sealed class UNetMidBlock2D : Module, IMidBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Attention> attentions;

    public ModuleList<Attention> Attentions => attentions;
    public ModuleList<ResnetBlock2D> Resnets => resnets;

    /// <param name="attnGroups">GroupNorm groups of the attention; null: the resnets' groups with "default" time scale shift, else no norm.</param>
    /// <param name="attentionHeadDim">Channels per head (null: one head over all channels).</param>
    public UNetMidBlock2D(long inChannels, ResnetSettings resnet, int numLayers = 1, int? attnGroups = null, bool addAttention = true,
        int? attentionHeadDim = 1, Generator? generator = null)
    {
        attnGroups ??= resnet.TimeScaleShift == "default" ? resnet.Groups : null;
        var headDim = attentionHeadDim ?? (int)inChannels;
        // diffusers registers attentions before resnets (their order in the state dict); the attentions are also
        // initialised first.
        attentions = RegisterModule("attentions", new ModuleList<Attention>(addAttention
            ? Enumerable.Range(0, numLayers).Select(_ => resnet.CreateSelfAttention(inChannels, headDim, attnGroups, generator))
            : []));
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers + 1).Select(_ => resnet.Create(inChannels, inChannels, generator: generator))));
    }

    /// <summary>The bottleneck of <paramref name="hidden"/>; <paramref name="temb"/> is null in the VAE.</summary>
    public Tensor Forward(Tensor hidden, Tensor? temb, Tensor? encoderHiddenStates = null)
    {
        var h = resnets[0].Forward(hidden, temb);
        for (int i = 1; i < resnets.Count; i++)
        {
            if (attentions.Count > 0)
            {
                using var previous = h;
                h = attentions[i - 1].Forward(previous);
            }
            using (var previous = h) h = resnets[i].Forward(previous, temb);
        }
        return h;
    }
}

/// <summary>Bottleneck of the Stable Diffusion U-Net: resnet, then (cross-attention transformer, resnet) pairs.</summary>
public sealed class UNetMidBlock2DCrossAttn : Module, IMidBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Transformer2DModel> attentions;

    public UNetMidBlock2DCrossAttn(long inChannels, ResnetSettings resnet, CrossAttentionSettings attention, int numLayers = 1,
        Generator? generator = null)
    {
        // diffusers does not pass only_cross_attention to the mid block's transformers.
        var settings = attention with { OnlyCrossAttention = false };
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers + 1).Select(_ => resnet.Create(inChannels, inChannels, generator: generator))));
        attentions = RegisterModule("attentions", new ModuleList<Transformer2DModel>(
            Enumerable.Range(0, numLayers).Select(_ => settings.Create(inChannels, resnet.Groups, generator: generator))));
    }

    public Tensor Forward(Tensor hidden, Tensor? temb, Tensor? encoderHiddenStates = null)
    {
        var h = resnets[0].Forward(hidden, temb);
        for (int i = 1; i < resnets.Count; i++)
        {
            using (var previous = h) h = attentions[i - 1].Forward(previous, encoderHiddenStates);
            using (var previous = h) h = resnets[i].Forward(previous, temb);
        }
        return h;
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>Resnets, then a stride-2 downsampling conv (all stages but the last).</summary>
public sealed class DownBlock2D : Module, IDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly Downsample2D? downsampler;

    public DownBlock2D(int numLayers, long inChannels, long outChannels, ResnetSettings resnet, bool addDownsample = true,
        int downsamplePadding = 1, Generator? generator = null)
    {
        resnets = RegisterModule("resnets", resnet.CreateStack(numLayers, inChannels, outChannels, generator));
        if (addDownsample)
            downsampler = RegisterModule("downsamplers", Downsample2D.Stage(outChannels, downsamplePadding, generator))[0];
    }

    public Tensor[] Forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates = null)
    {
        var states = new List<Tensor>();
        var h = hidden;
        foreach (var resnet in resnets) states.Add(h = resnet.Forward(h, temb));
        if (downsampler is not null) states.Add(downsampler.Forward(h));
        return [.. states];
    }
}

/// <summary>Resnets each followed by a group-normed self-attention (pixel DDPM), then downsampling (conv or resnet).</summary>
public sealed class AttnDownBlock2D : Module, IDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Attention> attentions;
    private readonly Module? downsampler;

    /// <param name="attentionHeadDim">Channels per head (null: one head over all channels).</param>
    /// <param name="downsampleType">"conv", "resnet" or null (no downsampling).</param>
    public AttnDownBlock2D(int numLayers, long inChannels, long outChannels, ResnetSettings resnet, int? attentionHeadDim,
        int downsamplePadding = 1, string? downsampleType = "conv", Generator? generator = null)
    {
        var headDim = attentionHeadDim ?? (int)outChannels;
        resnets = RegisterModule("resnets", resnet.CreateStack(numLayers, inChannels, outChannels, generator));
        attentions = RegisterModule("attentions", new ModuleList<Attention>(
            Enumerable.Range(0, numLayers).Select(_ => resnet.CreateSelfAttention(outChannels, headDim, resnet.Groups, generator))));
        downsampler = downsampleType switch
        {
            "conv" => new Downsample2D(outChannels, useConv: true, outChannels, downsamplePadding, generator),
            "resnet" => resnet.Create(outChannels, outChannels, down: true, generator: generator),
            null => null,
            _ => throw ConfigErrors.Unsupported("downsample_type", downsampleType, "\"conv\" or \"resnet\""),
        };
        if (downsampler is not null) RegisterModule("downsamplers", new ModuleList(downsampler));
    }

    public Tensor[] Forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates = null)
    {
        var states = new List<Tensor>();
        var h = hidden;
        for (int i = 0; i < resnets.Count; i++)
        {
            using var r = resnets[i].Forward(h, temb);
            states.Add(h = attentions[i].Forward(r));
        }
        if (downsampler is Downsample2D conv) states.Add(conv.Forward(h));
        else if (downsampler is ResnetBlock2D res) states.Add(res.Forward(h, temb));
        return [.. states];
    }
}

/// <summary>Resnets each followed by a cross-attention transformer (Stable Diffusion), then a downsampling conv.</summary>
public sealed class CrossAttnDownBlock2D : Module, IDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly Downsample2D? downsampler;

    public CrossAttnDownBlock2D(int numLayers, long inChannels, long outChannels, ResnetSettings resnet, CrossAttentionSettings attention,
        bool addDownsample = true, int downsamplePadding = 1, Generator? generator = null)
    {
        resnets = RegisterModule("resnets", resnet.CreateStack(numLayers, inChannels, outChannels, generator));
        attentions = RegisterModule("attentions", new ModuleList<Transformer2DModel>(
            Enumerable.Range(0, numLayers).Select(_ => attention.Create(outChannels, resnet.Groups, generator: generator))));
        if (addDownsample)
            downsampler = RegisterModule("downsamplers", Downsample2D.Stage(outChannels, downsamplePadding, generator))[0];
    }

    public Tensor[] Forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates = null)
    {
        var states = new List<Tensor>();
        var h = hidden;
        for (int i = 0; i < resnets.Count; i++)
        {
            using var r = resnets[i].Forward(h, temb);
            states.Add(h = attentions[i].Forward(r, encoderHiddenStates));
        }
        if (downsampler is not null) states.Add(downsampler.Forward(h));
        return [.. states];
    }
}

/// <summary>
/// The VAE encoder's stage: resnets without a timestep embedding, then an optional stride-2 <c>downsamplers.0</c>.
/// It returns only its output (diffusers' DownEncoderBlock2D keeps no skip states).
/// </summary>
public sealed class DownEncoderBlock2D : Module<Tensor, Tensor>
{
    public ModuleList<ResnetBlock2D> Resnets { get; }
    public ModuleList<Downsample2D>? Downsamplers { get; }

    public DownEncoderBlock2D(int numLayers, long inChannels, long outChannels, ResnetSettings resnet, bool addDownsample = true,
        int downsamplePadding = 1, Generator? generator = null)
    {
        Resnets = RegisterModule("resnets", resnet.CreateStack(numLayers, inChannels, outChannels, generator));
        if (addDownsample)
            Downsamplers = RegisterModule("downsamplers", Downsample2D.Stage(outChannels, downsamplePadding, generator));
    }

    public override Tensor Forward(Tensor input)
    {
        var hidden = input.Alias();
        foreach (var resnet in Resnets) hidden = hidden.Then(h => resnet.Forward(h, null));
        foreach (var downsampler in Downsamplers ?? []) hidden = hidden.Then(downsampler.Forward);
        return hidden;
    }
}

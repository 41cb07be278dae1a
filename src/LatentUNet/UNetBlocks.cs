using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

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

/// <summary>The U-Net's bottleneck.</summary>
public interface IMidBlock
{
    Tensor Forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates = null);
}

/// <summary>Settings every resnet of a U-Net shares (diffusers passes them to each block as resnet_*).</summary>
public sealed record ResnetSettings(long TembChannels, double Eps = 1e-6, string ActFn = "swish", int Groups = 32,
    double Dropout = 0, string TimeScaleShift = "default", double OutputScaleFactor = 1)
{
    public ResnetBlock2D Create(long inChannels, long outChannels, bool up = false, bool down = false) =>
        new(inChannels, outChannels, TembChannels, Groups, eps: Eps, dropout: Dropout, nonLinearity: ActFn,
            timeEmbeddingNorm: TimeScaleShift, outputScaleFactor: OutputScaleFactor, up: up, down: down);

    /// <summary>The pixel U-Net's self-attention (the deprecated AttentionBlock): one residual, group-normed attention.</summary>
    public Attention CreateSelfAttention(long channels, int attentionHeadDim, int? normGroups) =>
        new(channels, heads: (int)(channels / attentionHeadDim), dimHead: attentionHeadDim, bias: true, normNumGroups: normGroups,
            eps: Eps, rescaleOutputFactor: OutputScaleFactor, residualConnection: true, fromDeprecatedAttnBlock: true);
}

/// <summary>Settings of the cross-attention transformers (Transformer2DModel) in a conditional U-Net stage.</summary>
public sealed record CrossAttentionSettings(int NumAttentionHeads, long CrossAttentionDim, int TransformerLayers = 1,
    bool UseLinearProjection = false, bool OnlyCrossAttention = false, bool UpcastAttention = false)
{
    public Transformer2DModel Create(long channels, int groups, int? layers = null) =>
        new(NumAttentionHeads, (int)(channels / NumAttentionHeads), channels, numLayers: layers ?? TransformerLayers,
            normNumGroups: groups, crossAttentionDim: CrossAttentionDim, onlyCrossAttention: OnlyCrossAttention,
            upcastAttention: UpcastAttention, useLinearProjection: UseLinearProjection);
}

/// <summary>Resnets, then a stride-2 downsampling conv (all stages but the last).</summary>
public sealed class DownBlock2D : Module, IDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly Downsample2D? downsampler;

    public DownBlock2D(int numLayers, long inChannels, long outChannels, ResnetSettings resnet, bool addDownsample = true,
        int downsamplePadding = 1)
    {
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers).Select(i => resnet.Create(i == 0 ? inChannels : outChannels, outChannels))));
        if (addDownsample)
            downsampler = RegisterModule("downsamplers", new ModuleList<Downsample2D>(
                [new Downsample2D(outChannels, useConv: true, outChannels, downsamplePadding)]))[0];
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
        int downsamplePadding = 1, string? downsampleType = "conv")
    {
        var headDim = attentionHeadDim ?? (int)outChannels;
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers).Select(i => resnet.Create(i == 0 ? inChannels : outChannels, outChannels))));
        attentions = RegisterModule("attentions", new ModuleList<Attention>(
            Enumerable.Range(0, numLayers).Select(_ => resnet.CreateSelfAttention(outChannels, headDim, resnet.Groups))));
        downsampler = downsampleType switch
        {
            "conv" => new Downsample2D(outChannels, useConv: true, outChannels, downsamplePadding),
            "resnet" => resnet.Create(outChannels, outChannels, down: true),
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
        bool addDownsample = true, int downsamplePadding = 1)
    {
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers).Select(i => resnet.Create(i == 0 ? inChannels : outChannels, outChannels))));
        attentions = RegisterModule("attentions", new ModuleList<Transformer2DModel>(
            Enumerable.Range(0, numLayers).Select(_ => attention.Create(outChannels, resnet.Groups))));
        if (addDownsample)
            downsampler = RegisterModule("downsamplers", new ModuleList<Downsample2D>(
                [new Downsample2D(outChannels, useConv: true, outChannels, downsamplePadding)]))[0];
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
/// Shared decoder-stage loop: resnet i takes [running state, skip] concatenated on channels, where
/// the skips are consumed from the last; <paramref name="after"/> (attention) follows each resnet.
/// </summary>
internal static class UpBlockLoop
{
    /// <summary>Input channels of resnet <paramref name="i"/> of <paramref name="numLayers"/>: running state plus skip.</summary>
    public static long ResnetInChannels(int i, int numLayers, long inChannels, long prevOutputChannel, long outChannels) =>
        (i == 0 ? prevOutputChannel : outChannels) + (i == numLayers - 1 ? inChannels : outChannels);

    public static Tensor Run(Tensor hidden, IReadOnlyList<Tensor> skips, IReadOnlyList<ResnetBlock2D> resnets, Tensor temb,
        Func<int, Tensor, Tensor>? after)
    {
        if (skips.Count < resnets.Count)
            throw new ArgumentException($"the up block needs {resnets.Count} skip states, got {skips.Count}");
        var h = hidden;
        for (int i = 0; i < resnets.Count; i++)
        {
            var skip = skips[skips.Count - 1 - i];
            Tensor next;
            using (var joined = Tensor.Cat([h, skip], 1))
                next = resnets[i].Forward(joined, temb);
            if (after is not null)
            {
                var attended = after(i, next);
                next.Dispose();
                next = attended;
            }
            if (!ReferenceEquals(h, hidden)) h.Dispose();
            h = next;
        }
        return ReferenceEquals(h, hidden) ? hidden.Alias() : h;
    }

    public static Tensor Upsample(Tensor h, Upsample2D? upsampler, (long H, long W)? size)
    {
        if (upsampler is null) return h;
        using (h) return upsampler.Forward(h, size);
    }
}

/// <summary>Resnets over [state, skip] concatenations, then nearest ×2 upsampling with a conv.</summary>
public sealed class UpBlock2D : Module, IUpBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly Upsample2D? upsampler;

    public UpBlock2D(int numLayers, long inChannels, long prevOutputChannel, long outChannels, ResnetSettings resnet, bool addUpsample = true)
    {
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers).Select(i =>
            resnet.Create(UpBlockLoop.ResnetInChannels(i, numLayers, inChannels, prevOutputChannel, outChannels), outChannels))));
        if (addUpsample)
            upsampler = RegisterModule("upsamplers", new ModuleList<Upsample2D>([new Upsample2D(outChannels, useConv: true)]))[0];
    }

    public int ResnetCount => resnets.Count;

    public Tensor Forward(Tensor hidden, IReadOnlyList<Tensor> skips, Tensor temb, Tensor? encoderHiddenStates = null,
        (long H, long W)? upsampleSize = null) =>
        UpBlockLoop.Upsample(UpBlockLoop.Run(hidden, skips, resnets, temb, null), upsampler, upsampleSize);
}

/// <summary>Resnets each followed by a group-normed self-attention (pixel DDPM), then upsampling (conv or resnet).</summary>
public sealed class AttnUpBlock2D : Module, IUpBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Attention> attentions;
    private readonly Module? upsampler;

    /// <param name="upsampleType">"conv", "resnet" or null (no upsampling).</param>
    public AttnUpBlock2D(int numLayers, long inChannels, long prevOutputChannel, long outChannels, ResnetSettings resnet,
        int? attentionHeadDim, string? upsampleType = "conv")
    {
        var headDim = attentionHeadDim ?? (int)outChannels;
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers).Select(i =>
            resnet.Create(UpBlockLoop.ResnetInChannels(i, numLayers, inChannels, prevOutputChannel, outChannels), outChannels))));
        attentions = RegisterModule("attentions", new ModuleList<Attention>(
            Enumerable.Range(0, numLayers).Select(_ => resnet.CreateSelfAttention(outChannels, headDim, resnet.Groups))));
        upsampler = upsampleType switch
        {
            "conv" => new Upsample2D(outChannels, useConv: true),
            "resnet" => resnet.Create(outChannels, outChannels, up: true),
            null => null,
            _ => throw ConfigErrors.Unsupported("upsample_type", upsampleType, "\"conv\" or \"resnet\""),
        };
        if (upsampler is not null) RegisterModule("upsamplers", new ModuleList(upsampler));
    }

    public int ResnetCount => resnets.Count;

    // diffusers calls this block's upsampler without the explicit output size.
    public Tensor Forward(Tensor hidden, IReadOnlyList<Tensor> skips, Tensor temb, Tensor? encoderHiddenStates = null,
        (long H, long W)? upsampleSize = null)
    {
        var h = UpBlockLoop.Run(hidden, skips, resnets, temb, (i, x) => attentions[i].Forward(x));
        if (upsampler is null) return h;
        using (h) return upsampler is ResnetBlock2D res ? res.Forward(h, temb) : ((Upsample2D)upsampler).Forward(h);
    }
}

/// <summary>Resnets each followed by a cross-attention transformer (Stable Diffusion), then upsampling.</summary>
public sealed class CrossAttnUpBlock2D : Module, IUpBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly Upsample2D? upsampler;

    public CrossAttnUpBlock2D(int numLayers, long inChannels, long prevOutputChannel, long outChannels, ResnetSettings resnet,
        CrossAttentionSettings attention, bool addUpsample = true)
    {
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers).Select(i =>
            resnet.Create(UpBlockLoop.ResnetInChannels(i, numLayers, inChannels, prevOutputChannel, outChannels), outChannels))));
        attentions = RegisterModule("attentions", new ModuleList<Transformer2DModel>(
            Enumerable.Range(0, numLayers).Select(_ => attention.Create(outChannels, resnet.Groups))));
        if (addUpsample)
            upsampler = RegisterModule("upsamplers", new ModuleList<Upsample2D>([new Upsample2D(outChannels, useConv: true)]))[0];
    }

    public int ResnetCount => resnets.Count;

    public Tensor Forward(Tensor hidden, IReadOnlyList<Tensor> skips, Tensor temb, Tensor? encoderHiddenStates = null,
        (long H, long W)? upsampleSize = null) =>
        UpBlockLoop.Upsample(UpBlockLoop.Run(hidden, skips, resnets, temb, (i, x) => attentions[i].Forward(x, encoderHiddenStates)),
            upsampler, upsampleSize);
}

/// <summary>
/// Bottleneck of the pixel U-Net: resnet, then (attention, resnet) pairs. Used without attention
/// ("UNetMidBlock2D" in a conditional U-Net: a single resnet).
/// </summary>
public sealed class UNetMidBlock2D : Module, IMidBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Attention> attentions;

    /// <param name="attnGroups">GroupNorm groups of the attention; null: the resnets' groups with "default" time scale shift, else no norm.</param>
    /// <param name="attentionHeadDim">Channels per head (null: one head over all channels).</param>
    public UNetMidBlock2D(long inChannels, ResnetSettings resnet, int numLayers = 1, int? attnGroups = null, bool addAttention = true,
        int? attentionHeadDim = 1)
    {
        attnGroups ??= resnet.TimeScaleShift == "default" ? resnet.Groups : null;
        var headDim = attentionHeadDim ?? (int)inChannels;
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers + 1).Select(_ => resnet.Create(inChannels, inChannels))));
        attentions = RegisterModule("attentions", new ModuleList<Attention>(addAttention
            ? Enumerable.Range(0, numLayers).Select(_ => resnet.CreateSelfAttention(inChannels, headDim, attnGroups))
            : []));
    }

    public Tensor Forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates = null)
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

    public UNetMidBlock2DCrossAttn(long inChannels, ResnetSettings resnet, CrossAttentionSettings attention, int numLayers = 1)
    {
        // diffusers does not pass only_cross_attention to the mid block's transformers.
        var settings = attention with { OnlyCrossAttention = false };
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers + 1).Select(_ => resnet.Create(inChannels, inChannels))));
        attentions = RegisterModule("attentions", new ModuleList<Transformer2DModel>(
            Enumerable.Range(0, numLayers).Select(_ => settings.Create(inChannels, resnet.Groups))));
    }

    public Tensor Forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates = null)
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

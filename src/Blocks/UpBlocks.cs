using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

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

    public UpBlock2D(int numLayers, long inChannels, long prevOutputChannel, long outChannels, ResnetSettings resnet, bool addUpsample = true,
        Generator? generator = null)
    {
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers).Select(i =>
            resnet.Create(UpBlockLoop.ResnetInChannels(i, numLayers, inChannels, prevOutputChannel, outChannels), outChannels, generator: generator))));
        if (addUpsample)
            upsampler = RegisterModule("upsamplers", new ModuleList<Upsample2D>([new Upsample2D(outChannels, useConv: true, generator: generator)]))[0];
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
        int? attentionHeadDim, string? upsampleType = "conv", Generator? generator = null)
    {
        var headDim = attentionHeadDim ?? (int)outChannels;
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers).Select(i =>
            resnet.Create(UpBlockLoop.ResnetInChannels(i, numLayers, inChannels, prevOutputChannel, outChannels), outChannels, generator: generator))));
        attentions = RegisterModule("attentions", new ModuleList<Attention>(
            Enumerable.Range(0, numLayers).Select(_ => resnet.CreateSelfAttention(outChannels, headDim, resnet.Groups, generator))));
        upsampler = upsampleType switch
        {
            "conv" => new Upsample2D(outChannels, useConv: true, generator: generator),
            "resnet" => resnet.Create(outChannels, outChannels, up: true, generator: generator),
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
        CrossAttentionSettings attention, bool addUpsample = true, Generator? generator = null)
    {
        resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers).Select(i =>
            resnet.Create(UpBlockLoop.ResnetInChannels(i, numLayers, inChannels, prevOutputChannel, outChannels), outChannels, generator: generator))));
        attentions = RegisterModule("attentions", new ModuleList<Transformer2DModel>(
            Enumerable.Range(0, numLayers).Select(_ => attention.Create(outChannels, resnet.Groups, generator: generator))));
        if (addUpsample)
            upsampler = RegisterModule("upsamplers", new ModuleList<Upsample2D>([new Upsample2D(outChannels, useConv: true, generator: generator)]))[0];
    }

    public int ResnetCount => resnets.Count;

    public Tensor Forward(Tensor hidden, IReadOnlyList<Tensor> skips, Tensor temb, Tensor? encoderHiddenStates = null,
        (long H, long W)? upsampleSize = null) =>
        UpBlockLoop.Upsample(UpBlockLoop.Run(hidden, skips, resnets, temb, (i, x) => attentions[i].Forward(x, encoderHiddenStates)),
            upsampler, upsampleSize);
}

/// <summary>
/// The VAE decoder's stage: resnets without a timestep embedding or skip connections, then an optional nearest ×2
/// <c>upsamplers.0</c> (diffusers' UpDecoderBlock2D).
/// </summary>
public sealed class UpDecoderBlock2D : Module<Tensor, Tensor>
{
    public ModuleList<ResnetBlock2D> Resnets { get; }
    public ModuleList<Upsample2D>? Upsamplers { get; }

    public UpDecoderBlock2D(int numLayers, long inChannels, long outChannels, ResnetSettings resnet, bool addUpsample = true,
        Generator? generator = null)
    {
        Resnets = RegisterModule("resnets", resnet.CreateStack(numLayers, inChannels, outChannels, generator));
        if (addUpsample)
            Upsamplers = RegisterModule("upsamplers", new ModuleList<Upsample2D>([new Upsample2D(outChannels, useConv: true, generator: generator)]));
    }

    public override Tensor Forward(Tensor input)
    {
        var hidden = input.Alias();
        foreach (var resnet in Resnets) hidden = hidden.Then(h => resnet.Forward(h, null));
        foreach (var upsampler in Upsamplers ?? []) hidden = hidden.Then(upsampler.Forward);
        return hidden;
    }
}

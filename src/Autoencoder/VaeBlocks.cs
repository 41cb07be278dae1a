using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Autoencoder;

// The blocks of diffusers' VAE Encoder/Decoder (unet_2d_blocks.py, resnet.py, downsampling.py,
// upsampling.py, attention_processor.py) as the VAE uses them: no timestep embedding (temb=None),
// "default" time-embedding norm, eps 1e-6, output_scale_factor 1. They are deliberately separate
// from the U-Net's blocks so that this project does not depend on LatentUNet.

/// <summary>
/// diffusers' ResnetBlock2D without a timestep embedding:
/// h = conv2(dropout(act(norm2(conv1(act(norm1(x))))))), out = (shortcut(x) + h) / output_scale_factor,
/// where shortcut is a 1×1 conv when the channel count changes.
/// </summary>
public sealed class ResnetBlock2D : Module<Tensor, Tensor>
{
    public GroupNorm Norm1 { get; }
    public Conv2d Conv1 { get; }
    public GroupNorm Norm2 { get; }
    public Dropout Dropout { get; }
    public Conv2d Conv2 { get; }
    public Module<Tensor, Tensor> Nonlinearity { get; }
    public Conv2d? ConvShortcut { get; }
    public double OutputScaleFactor { get; }

    public ResnetBlock2D(int inChannels, int outChannels, int groups, double eps, string actFn, double dropout = 0.0,
        double outputScaleFactor = 1.0, Generator? generator = null)
    {
        Norm1 = RegisterModule("norm1", new GroupNorm(groups, inChannels, eps));
        Conv1 = RegisterModule("conv1", new Conv2d(inChannels, outChannels, 3, padding: 1, generator: generator));
        Norm2 = RegisterModule("norm2", new GroupNorm(groups, outChannels, eps));
        Dropout = RegisterModule("dropout", new Dropout(dropout));
        Conv2 = RegisterModule("conv2", new Conv2d(outChannels, outChannels, 3, padding: 1, generator: generator));
        Nonlinearity = RegisterModule("nonlinearity", Activation.Create(actFn));
        if (inChannels != outChannels)
            ConvShortcut = RegisterModule("conv_shortcut", new Conv2d(inChannels, outChannels, 1, generator: generator));
        OutputScaleFactor = outputScaleFactor;
    }

    public override Tensor Forward(Tensor input)
    {
        using var scope = DisposeScope.Enter();
        var hidden = Norm1.Forward(input)
            .Then(Nonlinearity.Forward)
            .Then(Conv1.Forward)
            .Then(Norm2.Forward)
            .Then(Nonlinearity.Forward)
            .Then(Dropout.Forward)
            .Then(Conv2.Forward);
        var shortcut = ConvShortcut?.Forward(input) ?? input;
        var output = shortcut + hidden;
        if (OutputScaleFactor != 1.0) output = output.Then(o => o / OutputScaleFactor);
        return scope.Keep(output);
    }
}

/// <summary>
/// diffusers' Downsample2D with a conv: a stride-2 3×3 conv named "conv". With padding 0 (the VAE
/// encoder's <c>downsample_padding=0</c>) the input is first padded by one on the right and bottom only.
/// </summary>
public sealed class Downsample2D : Module<Tensor, Tensor>
{
    public Conv2d Conv { get; }
    public int Padding { get; }

    public Downsample2D(int channels, int outChannels, int padding, Generator? generator = null)
    {
        Padding = padding;
        Conv = RegisterModule("conv", new Conv2d(channels, outChannels, 3, stride: 2, padding: padding, generator: generator));
    }

    public override Tensor Forward(Tensor input)
    {
        if (Padding != 0) return Conv.Forward(input);
        using var padded = Functional.Pad(input, [0, 1, 0, 1]);
        return Conv.Forward(padded);
    }
}

/// <summary>diffusers' Upsample2D with a conv: nearest-neighbour ×2, then a 3×3 conv named "conv".</summary>
public sealed class Upsample2D : Module<Tensor, Tensor>
{
    public Conv2d Conv { get; }

    public Upsample2D(int channels, int outChannels, Generator? generator = null) =>
        Conv = RegisterModule("conv", new Conv2d(channels, outChannels, 3, padding: 1, generator: generator));

    public override Tensor Forward(Tensor input)
    {
        using var upsampled = Functional.Interpolate(input, 2.0, InterpolationMode.Nearest);
        return Conv.Forward(upsampled);
    }
}

/// <summary>
/// The VAE mid-block attention: diffusers' <c>Attention</c> built with <c>_from_deprecated_attn_block</c>,
/// one head spanning all channels (attention_head_dim = channels), GroupNorm before the projections,
/// a residual connection and rescale_output_factor 1. Over the H·W positions of x [B, C, H, W]:
/// h = GroupNorm(x); q, k, v = h W_q, h W_k, h W_v; out = to_out(softmax(q kᵀ / √d) v) + x.
/// </summary>
public sealed class VaeAttention : Module<Tensor, Tensor>
{
    public GroupNorm GroupNorm { get; }
    public Linear ToQ { get; }
    public Linear ToK { get; }
    public Linear ToV { get; }
    public ModuleList ToOut { get; }
    private readonly Linear outProjection;
    private readonly Dropout outDropout;
    public int Heads { get; }
    public double Scale { get; }
    public double RescaleOutputFactor { get; }

    public VaeAttention(int channels, int headDim, int groups, double eps, double rescaleOutputFactor = 1.0, Generator? generator = null)
    {
        Heads = channels / headDim;
        Scale = 1.0 / Math.Sqrt(headDim);
        RescaleOutputFactor = rescaleOutputFactor;
        GroupNorm = RegisterModule("group_norm", new GroupNorm(groups, channels, eps));
        ToQ = RegisterModule("to_q", new Linear(channels, channels, generator: generator));
        ToK = RegisterModule("to_k", new Linear(channels, channels, generator: generator));
        ToV = RegisterModule("to_v", new Linear(channels, channels, generator: generator));
        outProjection = new Linear(channels, channels, generator: generator);
        outDropout = new Dropout(0.0);
        ToOut = RegisterModule("to_out", new ModuleList(outProjection, outDropout));
    }

    public override Tensor Forward(Tensor input)
    {
        using var scope = DisposeScope.Enter();
        var (b, c, height, width) = (input.Size(0), input.Size(1), input.Size(2), input.Size(3));
        var length = height * width;

        // [B, C, H, W] → [B, H·W, C] tokens, normalised over channel groups.
        var tokens = input.View(b, c, length).Transpose(1, 2);
        var hidden = GroupNorm.Forward(tokens.Transpose(1, 2)).Then(h => h.Transpose(1, 2));

        var query = HeadsToBatch(ToQ.Forward(hidden));
        var key = HeadsToBatch(ToK.Forward(hidden));
        var value = HeadsToBatch(ToV.Forward(hidden));
        hidden.Dispose();

        // scores = scale · q kᵀ, computed as diffusers does with baddbmm(β = 0, α = scale).
        using var unused = Tensors.Empty([query.Size(0), length, length], query.DType, query.Device);
        var probabilities = unused.Baddbmm(query, key.Transpose(-1, -2), beta: 0, alpha: Scale).Then(s => Functional.Softmax(s, -1));
        var attended = probabilities.Bmm(value).Then(BatchToHeads);
        probabilities.Dispose();

        var output = outProjection.Forward(attended)
            .Then(outDropout.Forward)
            .Then(o => o.Transpose(-1, -2).Reshape(b, c, height, width))
            .Then(o => o + input);
        if (RescaleOutputFactor != 1.0) output = output.Then(o => o / RescaleOutputFactor);
        return scope.Keep(output);
    }

    // [B, L, heads·d] → [B·heads, L, d] (diffusers' head_to_batch_dim).
    private Tensor HeadsToBatch(Tensor x)
    {
        var (b, l, dim) = (x.Size(0), x.Size(1), x.Size(2));
        if (Heads == 1) return x;
        return x.Then(t => t.Reshape(b, l, Heads, dim / Heads)).Then(t => t.Permute(0, 2, 1, 3)).Then(t => t.Reshape(b * Heads, l, dim / Heads));
    }

    // [B·heads, L, d] → [B, L, heads·d] (diffusers' batch_to_head_dim).
    private Tensor BatchToHeads(Tensor x)
    {
        if (Heads == 1) return x.Alias();
        var (bh, l, d) = (x.Size(0), x.Size(1), x.Size(2));
        using var split = x.Reshape(bh / Heads, Heads, l, d);
        using var permuted = split.Permute(0, 2, 1, 3);
        return permuted.Reshape(bh / Heads, l, d * Heads);
    }
}

/// <summary>diffusers' DownEncoderBlock2D: <c>resnets</c>, then an optional stride-2 <c>downsamplers.0</c>.</summary>
public sealed class DownEncoderBlock2D : Module<Tensor, Tensor>
{
    public ModuleList<ResnetBlock2D> Resnets { get; }
    public ModuleList<Downsample2D>? Downsamplers { get; }

    public DownEncoderBlock2D(int inChannels, int outChannels, int numLayers, int groups, double eps, string actFn,
        bool addDownsample, int downsamplePadding, Generator? generator = null)
    {
        Resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers).Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, groups, eps, actFn, generator: generator))));
        if (addDownsample)
            Downsamplers = RegisterModule("downsamplers", new ModuleList<Downsample2D>([new Downsample2D(outChannels, outChannels, downsamplePadding, generator)]));
    }

    public override Tensor Forward(Tensor input)
    {
        var hidden = input.Alias();
        foreach (var resnet in Resnets) hidden = hidden.Then(resnet.Forward);
        foreach (var downsampler in Downsamplers ?? []) hidden = hidden.Then(downsampler.Forward);
        return hidden;
    }
}

/// <summary>diffusers' UpDecoderBlock2D: <c>resnets</c>, then an optional nearest ×2 <c>upsamplers.0</c>.</summary>
public sealed class UpDecoderBlock2D : Module<Tensor, Tensor>
{
    public ModuleList<ResnetBlock2D> Resnets { get; }
    public ModuleList<Upsample2D>? Upsamplers { get; }

    public UpDecoderBlock2D(int inChannels, int outChannels, int numLayers, int groups, double eps, string actFn,
        bool addUpsample, Generator? generator = null)
    {
        Resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, numLayers).Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, groups, eps, actFn, generator: generator))));
        if (addUpsample)
            Upsamplers = RegisterModule("upsamplers", new ModuleList<Upsample2D>([new Upsample2D(outChannels, outChannels, generator)]));
    }

    public override Tensor Forward(Tensor input)
    {
        var hidden = input.Alias();
        foreach (var resnet in Resnets) hidden = hidden.Then(resnet.Forward);
        foreach (var upsampler in Upsamplers ?? []) hidden = hidden.Then(upsampler.Forward);
        return hidden;
    }
}

/// <summary>
/// diffusers' UNetMidBlock2D as the VAE uses it: resnets.0, then (attentions.i, resnets.i+1) for one
/// layer. Without <c>mid_block_add_attention</c> there is no attention and two resnets in a row.
/// </summary>
public sealed class UNetMidBlock2D : Module<Tensor, Tensor>
{
    public ModuleList<VaeAttention>? Attentions { get; }
    public ModuleList<ResnetBlock2D> Resnets { get; }

    public UNetMidBlock2D(int channels, int groups, double eps, string actFn, bool addAttention, Generator? generator = null)
    {
        // diffusers registers Attentions before Resnets; a list of None registers no parameters.
        if (addAttention)
            Attentions = RegisterModule("attentions", new ModuleList<VaeAttention>([new VaeAttention(channels, channels, groups, eps, generator: generator)]));
        Resnets = RegisterModule("resnets", new ModuleList<ResnetBlock2D>(
            Enumerable.Range(0, 2).Select(_ => new ResnetBlock2D(channels, channels, groups, eps, actFn, generator: generator))));
    }

    public override Tensor Forward(Tensor input)
    {
        var hidden = Resnets[0].Forward(input);
        if (Attentions is not null) hidden = hidden.Then(Attentions[0].Forward);
        return hidden.Then(Resnets[1].Forward);
    }
}

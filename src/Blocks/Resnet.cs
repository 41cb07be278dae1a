using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// diffusers' ResnetBlock2D, the U-Net's residual unit with timestep conditioning:
/// <code>
/// h = conv1(act(norm1(x)))                         (x and h resampled after the first act when up/down)
/// h = norm2(h + proj(act(temb)))                   time_embedding_norm "default"
/// h = norm2(h) · (1 + scale) + shift               "scale_shift", [scale, shift] = proj(act(temb))
/// out = (shortcut(x) + conv2(dropout(act(h)))) / output_scale_factor
/// </code>
/// The shortcut is a 1×1 conv when the channel count changes.
/// </summary>
public sealed class ResnetBlock2D : Module
{
    private readonly GroupNorm norm1;
    private readonly Conv2d conv1;
    private readonly Linear? timeEmbProj;
    private readonly GroupNorm norm2;
    private readonly Dropout dropout;
    private readonly Conv2d conv2;
    private readonly Module<Tensor, Tensor> nonlinearity;
    private readonly Upsample2D? upsample;
    private readonly Downsample2D? downsample;
    private readonly Conv2d? convShortcut;

    public long InChannels { get; }
    public long OutChannels { get; }
    public string TimeEmbeddingNorm { get; }
    public double OutputScaleFactor { get; }
    public bool SkipTimeAct { get; }

    public ResnetBlock2D(long inChannels, long? outChannels = null, long? tembChannels = 512, int groups = 32, int? groupsOut = null,
        double eps = 1e-6, double dropout = 0, string nonLinearity = "swish", string timeEmbeddingNorm = "default",
        double outputScaleFactor = 1, bool? useInShortcut = null, bool up = false, bool down = false,
        bool convShortcutBias = true, long? conv2dOutChannels = null, bool skipTimeAct = false, Generator? generator = null)
    {
        if (timeEmbeddingNorm is not ("default" or "scale_shift"))
            throw ConfigErrors.Unsupported("resnet_time_scale_shift", timeEmbeddingNorm, "\"default\" or \"scale_shift\"");
        var outC = outChannels ?? inChannels;
        InChannels = inChannels;
        OutChannels = outC;
        TimeEmbeddingNorm = timeEmbeddingNorm;
        OutputScaleFactor = outputScaleFactor;
        SkipTimeAct = skipTimeAct;

        norm1 = RegisterModule("norm1", new GroupNorm(groups, inChannels, eps));
        conv1 = RegisterModule("conv1", new Conv2d(inChannels, outC, 3, padding: 1, generator: generator));
        if (tembChannels is { } t)
            timeEmbProj = RegisterModule("time_emb_proj", new Linear(t, timeEmbeddingNorm == "scale_shift" ? 2 * outC : outC, generator: generator));
        norm2 = RegisterModule("norm2", new GroupNorm(groupsOut ?? groups, outC, eps));
        this.dropout = RegisterModule("dropout", new Dropout(dropout));
        var convOut = conv2dOutChannels ?? outC;
        conv2 = RegisterModule("conv2", new Conv2d(outC, convOut, 3, padding: 1, generator: generator));
        nonlinearity = RegisterModule("nonlinearity", Activations.Create(nonLinearity));
        if (up) upsample = RegisterModule("upsample", new Upsample2D(inChannels, useConv: false));
        else if (down) downsample = RegisterModule("downsample", new Downsample2D(inChannels, useConv: false));
        if (useInShortcut ?? inChannels != convOut)
            convShortcut = RegisterModule("conv_shortcut", new Conv2d(inChannels, convOut, 1, bias: convShortcutBias, generator: generator));
    }

    /// <summary>
    /// x [N, C, H, W] and the timestep embedding temb [N, temb_channels]; temb is null where the block has no time
    /// projection (temb_channels None: the VAE's blocks).
    /// </summary>
    public Tensor Forward(Tensor input, Tensor? temb)
    {
        using var scope = DisposeScope.Enter();
        // Each intermediate is freed as soon as the next step has it (Then), so a large VAE decode holds a couple of
        // activations at a time.
        var h = Activations.GroupNormThen(norm1, nonlinearity, input);
        var x = input;
        if (upsample is not null)
        {
            x = upsample.Forward(x);
            h = h.Then(upsample.Forward);
        }
        else if (downsample is not null)
        {
            x = downsample.Forward(x);
            h = h.Then(downsample.Forward);
        }
        h = h.Then(conv1.Forward);

        Tensor? t = null;
        if (timeEmbProj is not null && temb is not null)
            t = timeEmbProj.Forward(SkipTimeAct ? temb : nonlinearity.Forward(temb)).Unsqueeze(-1).Unsqueeze(-1);

        if (TimeEmbeddingNorm == "scale_shift")
        {
            if (t is null) throw new ArgumentException("a scale_shift resnet block needs the timestep embedding");
            var parts = t.Chunk(2, 1);
            h = Activate(h.Then(norm2.Forward) * (1 + parts[0]) + parts[1]);
        }
        else
        {
            if (t is not null) h = h.Then(v => v + t);
            h = h.Then(v => Activations.GroupNormThen(norm2, nonlinearity, v));
        }

        h = h.Then(dropout.Forward).Then(conv2.Forward);
        if (convShortcut is not null) x = convShortcut.Forward(x);
        if (Autograd.IsGradEnabled)
        {
            var output = x + h;
            if (OutputScaleFactor != 1) output = output / OutputScaleFactor;
            return scope.Keep(output);
        }
        // Without autograd the residual is added into h, which this block owns (the same sum, bit for bit).
        h.Add_(x);
        if (OutputScaleFactor != 1) h.Div_(OutputScaleFactor);
        return scope.Keep(h);
    }

    // After scale_shift's affine step (GroupNorm → SiLU pairs go through Activations.GroupNormThen, fused).
    // Without autograd SiLU writes into h, which this block owns: at a 512² VAE decode every avoided result is a fresh
    // 64–128 MB mapping whose pages the kernel faults in (issue 19; measured in the README's issue-19 section).
    private Tensor Activate(Tensor h) =>
        nonlinearity is SiLU && !Autograd.IsGradEnabled ? h.Silu_() : h.Then(nonlinearity.Forward);
}

/// <summary>
/// diffusers' Downsample2D: a stride-2 3×3 conv (weights "conv"), or 2×2 average pooling without conv.
/// With padding 0 (the DDPM U-Net and the VAE encoder) the input is first padded by one on the right and
/// bottom only, so the stride-2 windows line up as in the original TensorFlow code.
/// </summary>
public sealed class Downsample2D : Module<Tensor, Tensor>
{
    private readonly Conv2d? conv;

    public long Channels { get; }
    public int Padding { get; }

    public Downsample2D(long channels, bool useConv = true, long? outChannels = null, int padding = 1, Generator? generator = null)
    {
        Channels = channels;
        Padding = padding;
        if (useConv) conv = RegisterModule("conv", new Conv2d(channels, outChannels ?? channels, 3, stride: 2, padding: padding, generator: generator));
        else if ((outChannels ?? channels) != channels) throw new ArgumentException("average-pool downsampling keeps the channel count");
    }

    /// <summary>A stage's <c>downsamplers</c>: one stride-2 conv keeping the channels.</summary>
    public static ModuleList<Downsample2D> Stage(long channels, int padding, Generator? generator = null) =>
        new([new Downsample2D(channels, useConv: true, channels, padding, generator)]);

    public override Tensor Forward(Tensor input)
    {
        if (input.Size(1) != Channels) throw new ArgumentException($"Downsample2D expects {Channels} channels, got {input.Size(1)}");
        if (conv is null) return Functional.AvgPool2d(input, 2, 2);
        if (Padding != 0) return conv.Forward(input);
        using var padded = Functional.Pad(input, [0, 1, 0, 1]);
        return conv.Forward(padded);
    }
}

/// <summary>
/// diffusers' Upsample2D: nearest-neighbour ×2 (or to an explicit size, for skip connections of odd
/// sizes), then a 3×3 conv when <c>use_conv</c>.
/// </summary>
public sealed class Upsample2D : Module<Tensor, Tensor>
{
    private readonly Conv2d? conv;

    public long Channels { get; }

    public Upsample2D(long channels, bool useConv = true, long? outChannels = null, Generator? generator = null)
    {
        Channels = channels;
        if (useConv) conv = RegisterModule("conv", new Conv2d(channels, outChannels ?? channels, 3, padding: 1, generator: generator));
    }

    public override Tensor Forward(Tensor input) => Forward(input, null);

    public Tensor Forward(Tensor input, (long H, long W)? outputSize)
    {
        if (input.Size(1) != Channels) throw new ArgumentException($"Upsample2D expects {Channels} channels, got {input.Size(1)}");
        using var scope = DisposeScope.Enter();
        // Nearest upsampling has no bfloat16 kernel on some backends: diffusers goes through float32. Nearest only copies
        // values, so the round trip changes none; libtorch's CPU kernel takes bf16, so there it is skipped (two
        // converting copies of the activation fewer, issue 19).
        var viaF32 = input.DType == DType.BFloat16 && input.Device.Type != DeviceType.Cpu;
        var x = viaF32 ? input.Float() : input;
        x = outputSize is { } size ? Functional.Interpolate(x, size) : Functional.Interpolate(x, 2.0);
        if (viaF32) x = x.To(DType.BFloat16);
        if (conv is not null) x = conv.Forward(x);
        return scope.Keep(x);
    }
}

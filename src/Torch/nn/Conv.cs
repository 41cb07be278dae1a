using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.NN;

/// <summary>torch.nn.Conv2d (zero padding): weight [out, in / groups, kh, kw], bias [out].</summary>
public sealed class Conv2d : Module<Tensor, Tensor>
{
    public long InChannels { get; }
    public long OutChannels { get; }
    public (int H, int W) KernelSize { get; }
    public (int H, int W) Stride { get; }
    public (int H, int W) Padding { get; }
    public (int H, int W) Dilation { get; }
    public int Groups { get; }
    public Tensor Weight { get; }
    public Tensor? Bias { get; }

    public Conv2d(long inChannels, long outChannels, int kernelSize, int stride = 1, int padding = 0, int dilation = 1,
        int groups = 1, bool bias = true, Generator? generator = null)
        : this(inChannels, outChannels, (kernelSize, kernelSize), (stride, stride), (padding, padding), (dilation, dilation), groups, bias, generator)
    {
    }

    public Conv2d(long inChannels, long outChannels, (int H, int W) kernelSize, (int H, int W) stride, (int H, int W) padding,
        (int H, int W) dilation, int groups = 1, bool bias = true, Generator? generator = null)
    {
        ConvChecks.Validate(inChannels, outChannels, groups);
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        Dilation = dilation;
        Groups = groups;
        var w = Tensors.Empty([outChannels, inChannels / groups, kernelSize.H, kernelSize.W]);
        var b = bias ? Tensors.Empty([outChannels]) : null;
        Init.DefaultLinearOrConv(w, b, generator);
        Weight = RegisterParameter("weight", w);
        Bias = RegisterParameter("bias", b);
    }

    private readonly PrepackedConvWeight prepacked = new();

    public override Tensor Forward(Tensor input)
    {
        if (prepacked.Get(this, input) is { } packed)
            return PrepackedConvWeight.Convolve(input, packed, Bias, Stride, Padding, Dilation, Groups);
        return Functional.Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups);
    }

    internal override void OnTensorsReplaced() => prepacked.Clear();

    protected override void Dispose(bool disposing)
    {
        if (disposing) prepacked.Clear();
        base.Dispose(disposing);
    }
}

/// <summary>
/// A Conv2d weight reordered once into oneDNN's blocked layout, for inference on the CPU: libtorch's
/// conv2d reorders the dense weight on every call, which costs more than the convolution itself where
/// the weights are large and the feature maps small (the U-Net's 1280-channel blocks at 4×4 and 8×8:
/// 3–7× per call). The copy is made at the first forward without autograd and kept while the weight's
/// version counter, handle and dtype stay the same; an in-place update (an optimiser step, an EMA copy,
/// LoadStateDict) or a conversion makes it stale. Weights that are inference tensors have no version
/// counter and are never packed. The convolution is the same oneDNN primitive; the packed layout is chosen
/// without the input's size, which can change the kernel and so the float rounding (tests: ≤ 1e-6 relative).
/// </summary>
internal sealed class PrepackedConvWeight
{
    private static readonly bool Available = NativeMethods.HasMkldnn() == 1
        && Environment.GetEnvironmentVariable("LDTORCH_CONV_PREPACK") != "0";

    private readonly Lock gate = new();
    private Tensor? packed;
    private IntPtr handle;
    private long version;
    private DType dtype;

    public Tensor? Get(Conv2d conv, Tensor input)
    {
        if (!Available || Autograd.IsGradEnabled) return null;
        var weight = conv.Weight;
        var weightType = weight.DType;
        if (weightType is not (DType.Float32 or DType.BFloat16) || input.DType != weightType || input.Dim != 4
            || weight.Device.Type != DeviceType.Cpu || input.Device.Type != DeviceType.Cpu
            || conv.Bias is { } b && b.DType != weightType)
            return null;
        var currentVersion = NativeMethods.TensorVersion(weight.Handle);
        if (currentVersion < 0) return null;
        lock (gate)
        {
            if (packed is not null && handle == weight.Handle && version == currentVersion && dtype == weightType) return packed;
            Clear();
            packed = Pack(weight, conv.Stride, conv.Padding, conv.Dilation, conv.Groups);
            handle = weight.Handle;
            version = currentVersion;
            dtype = weightType;
            return packed;
        }
    }

    public void Clear()
    {
        lock (gate)
        {
            packed?.Dispose();
            packed = null;
            handle = IntPtr.Zero;
        }
    }

    private static unsafe Tensor Pack(Tensor weight, (int H, int W) stride, (int H, int W) padding, (int H, int W) dilation, int groups)
    {
        long* s = stackalloc long[] { stride.H, stride.W };
        long* p = stackalloc long[] { padding.H, padding.W };
        long* d = stackalloc long[] { dilation.H, dilation.W };
        return new Tensor(NativeMethods.Conv2dPrepack(weight.Handle, s, p, d, groups), "conv2d_prepack").DetachFromDisposeScope();
    }

    public static unsafe Tensor Convolve(Tensor input, Tensor packed, Tensor? bias, (int H, int W) stride, (int H, int W) padding,
        (int H, int W) dilation, int groups)
    {
        long* s = stackalloc long[] { stride.H, stride.W };
        long* p = stackalloc long[] { padding.H, padding.W };
        long* d = stackalloc long[] { dilation.H, dilation.W };
        return new(NativeMethods.Conv2dPrepacked(input.Handle, packed.Handle, bias?.Handle ?? IntPtr.Zero, s, p, d, groups), "conv2d_prepacked");
    }
}

/// <summary>torch.nn.ConvTranspose2d (square kernel): weight [in, out / groups, k, k], bias [out].</summary>
public sealed class ConvTranspose2d : Module<Tensor, Tensor>
{
    public long InChannels { get; }
    public long OutChannels { get; }
    public int KernelSize { get; }
    public int Stride { get; }
    public int Padding { get; }
    public int OutputPadding { get; }
    public int Groups { get; }
    public int Dilation { get; }
    public Tensor Weight { get; }
    public Tensor? Bias { get; }

    public ConvTranspose2d(long inChannels, long outChannels, int kernelSize, int stride = 1, int padding = 0, int outputPadding = 0,
        int groups = 1, bool bias = true, int dilation = 1, Generator? generator = null)
    {
        ConvChecks.Validate(inChannels, outChannels, groups);
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        OutputPadding = outputPadding;
        Groups = groups;
        Dilation = dilation;
        var w = Tensors.Empty([inChannels, outChannels / groups, kernelSize, kernelSize]);
        var b = bias ? Tensors.Empty([outChannels]) : null;
        Init.DefaultLinearOrConv(w, b, generator);
        Weight = RegisterParameter("weight", w);
        Bias = RegisterParameter("bias", b);
    }

    public override Tensor Forward(Tensor input) =>
        Functional.ConvTranspose2d(input, Weight, Bias, Stride, Padding, OutputPadding, Groups, Dilation);
}

internal static class ConvChecks
{
    internal static void Validate(long inChannels, long outChannels, int groups)
    {
        if (groups < 1) throw new ArgumentOutOfRangeException(nameof(groups), groups, "groups must be at least 1");
        if (inChannels % groups != 0) throw new ArgumentException($"in_channels ({inChannels}) must be divisible by groups ({groups})");
        if (outChannels % groups != 0) throw new ArgumentException($"out_channels ({outChannels}) must be divisible by groups ({groups})");
    }
}

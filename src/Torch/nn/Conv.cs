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
    private readonly Tensor weight;

    /// <summary>The weight [out, in / groups, kh, kw]; reading it gives back the plain copy if inference released it.</summary>
    public Tensor Weight
    {
        get
        {
            prepacked.Restore(weight);
            return weight;
        }
    }

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
        weight = RegisterParameter("weight", w);
        Bias = RegisterParameter("bias", b);
        prepacked = new PrepackedWeight(PrepackAvailable, dtype => dtype is DType.Float32 or DType.BFloat16, Prepack, Unpack);
    }

    private static readonly bool PrepackAvailable = NativeMethods.HasMkldnn() == 1
        && Environment.GetEnvironmentVariable("LDTORCH_CONV_PREPACK") != "0";

    private readonly PrepackedWeight prepacked;

    public override Tensor Forward(Tensor input)
    {
        var applies = input.DType == weight.DType && input.Dim == 4 && input.Device.Type == DeviceType.Cpu;
        if (prepacked.Get(weight, Bias, applies) is { } packed) return Convolve(input, packed);
        return Functional.Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups);
    }

    private unsafe Tensor Prepack(Tensor w)
    {
        long* s = stackalloc long[] { Stride.H, Stride.W };
        long* p = stackalloc long[] { Padding.H, Padding.W };
        long* d = stackalloc long[] { Dilation.H, Dilation.W };
        return new Tensor(NativeMethods.Conv2dPrepack(w.Handle, s, p, d, Groups), "conv2d_prepack").DetachFromDisposeScope();
    }

    private static unsafe Tensor Unpack(Tensor packed, long[] shape)
    {
        fixed (long* s = shape) return new Tensor(NativeMethods.Conv2dUnpack(packed.Handle, s), "conv2d_unpack");
    }

    private unsafe Tensor Convolve(Tensor input, Tensor packed)
    {
        long* s = stackalloc long[] { Stride.H, Stride.W };
        long* p = stackalloc long[] { Padding.H, Padding.W };
        long* d = stackalloc long[] { Dilation.H, Dilation.W };
        return new(NativeMethods.Conv2dPrepacked(input.Handle, packed.Handle, Bias?.Handle ?? IntPtr.Zero, s, p, d, Groups), "conv2d_prepacked");
    }

    internal override void OnTensorsReplaced() => prepacked.Clear(weight);

    internal override void RestoreReleasedTensors() => prepacked.Restore(weight);

    internal override long DerivedTensorBytes => prepacked.Bytes;

    internal override void PrepackOwnWeights() => prepacked.PackNow(weight, Bias);

    protected override void Dispose(bool disposing)
    {
        if (disposing) prepacked.Drop(weight);
        base.Dispose(disposing);
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

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
    }

    private readonly PrepackedConvWeight prepacked = new();

    public override Tensor Forward(Tensor input)
    {
        if (prepacked.Get(this, weight, input) is { } packed)
            return PrepackedConvWeight.Convolve(input, packed, Bias, Stride, Padding, Dilation, Groups);
        return Functional.Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups);
    }

    internal override void OnTensorsReplaced() => prepacked.Clear(weight);

    internal override void RestoreReleasedTensors() => prepacked.Restore(weight);

    internal override long DerivedTensorBytes => prepacked.Bytes;

    internal override void PrepackOwnWeights() => prepacked.PackNow(this, weight);

    protected override void Dispose(bool disposing)
    {
        if (disposing) prepacked.Drop(weight);
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
/// <para>
/// One copy, not two (issue 19): a weight that does not require grad (a model frozen for inference) is
/// released once packed. The Tensor object stays (optimisers, state dicts and the module keep it) but
/// refers to a one-element NaN tensor expanded to the weight's shape and dtype, so shape and dtype stay
/// right. Anything that uses its values from outside the forward pass, through any reference (the Tensor's
/// handle for an operation, the <see cref="Conv2d.Weight"/> getter, parameter listings, state dicts,
/// conversions, a LoRA merge's kept list), first gets it back: the packed copy reordered to the plain layout,
/// bit for bit the same values (a reorder is a permutation); the next forward without autograd releases it again.
/// A weight that requires grad is never released, so autograd and training see no difference.
/// </para>
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
    private bool released;

    public Tensor? Get(Conv2d conv, Tensor weight, Tensor input)
    {
        if (!Available || Autograd.IsGradEnabled) return null;
        if (input.DType != weight.DType || input.Dim != 4 || input.Device.Type != DeviceType.Cpu) return null;
        return Pack(conv, weight);
    }

    /// <summary>
    /// Packs (and releases) a frozen weight now rather than at the first forward: a model about to run inference,
    /// loaded inside <see cref="NativeHeap.MapWeights"/> so that the released plain weight goes back to the system.
    /// </summary>
    public void PackNow(Conv2d conv, Tensor weight)
    {
        if (Available && !weight.RequiresGrad) Pack(conv, weight);
    }

    private Tensor? Pack(Conv2d conv, Tensor weight)
    {
        // Metadata only until the weight's values are needed: reading them would give a released weight back.
        var weightType = weight.DType;
        if (weightType is not (DType.Float32 or DType.BFloat16) || weight.Device.Type != DeviceType.Cpu
            || conv.Bias is { } b && b.DType != weightType)
            return null;
        lock (gate)
        {
            if (released) return packed;
            var currentVersion = NativeMethods.TensorVersion(weight.Handle);
            if (currentVersion < 0) return null;
            if (packed is null || handle != weight.Handle || version != currentVersion || dtype != weightType)
            {
                Drop(weight);
                packed = Prepack(weight, conv.Stride, conv.Padding, conv.Dilation, conv.Groups);
                handle = weight.Handle;
                version = currentVersion;
                dtype = weightType;
            }
            if (!weight.RequiresGrad) Release(weight);
            return packed;
        }
    }

    /// <summary>Bytes of the packed copy (0 when there is none).</summary>
    public long Bytes
    {
        get
        {
            lock (gate) return packed?.StorageBytes ?? 0;
        }
    }

    /// <summary>Gives the plain weight back if it was released; the packed copy stays valid for it.</summary>
    public unsafe void Restore(Tensor weight)
    {
        lock (gate)
        {
            weight.RestoreBeforeUse(null);
            if (!released || packed is null) return;
            var shape = weight.Shape;
            Tensor dense;
            fixed (long* s = shape) dense = new Tensor(NativeMethods.Conv2dUnpack(packed.Handle, s), "conv2d_unpack");
            weight.ReplaceWith(dense);
            released = false;
            handle = weight.Handle;
            version = NativeMethods.TensorVersion(weight.Handle);
        }
    }

    /// <summary>The weight changed behind the packed copy (a conversion): drop the copy, giving the weight back first.</summary>
    public void Clear(Tensor weight)
    {
        Restore(weight);
        Drop(weight);
    }

    /// <summary>Frees the packed copy; only where the weight is not released (or is being disposed with it).</summary>
    public void Drop(Tensor weight)
    {
        lock (gate)
        {
            weight.RestoreBeforeUse(null);
            packed?.Dispose();
            packed = null;
            handle = IntPtr.Zero;
            released = false;
        }
    }

    private void Release(Tensor weight)
    {
        using (DisposeScope.Enter())
        {
            using var nan = Tensors.Full([1, 1, 1, 1], double.NaN, weight.DType, weight.Device);
            weight.ReplaceWith(nan.Expand(weight.Shape));
        }
        released = true;
        weight.RestoreBeforeUse(Restore); // any later use of the values, through any reference, gets them back first
    }

    private static unsafe Tensor Prepack(Tensor weight, (int H, int W) stride, (int H, int W) padding, (int H, int W) dilation, int groups)
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

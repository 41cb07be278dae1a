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

    /// <summary>
    /// Set by an owner that feeds this 1×1 convolution tokens [..., C] through <see cref="TryForwardTokens"/>
    /// (<c>Transformer2DModel</c>'s projections in SD1.x). For inference on oneDNN's matmul (<see cref="Linear.PacksEveryProduct"/>)
    /// the weight is then packed as a linear layer's [O, C] matrix, and the tokens need none of the reorders into and out of
    /// oneDNN's channel blocks that libtorch's convolution makes around its kernel: the SD1.5 U-Net's 16 pairs of
    /// projections at 256², batch 2, bf16 took 38 ms as convolutions (~550 GFLOP/s), about half that as products on the
    /// tokens (bench/README.md, issue 19).
    /// </summary>
    public bool FedTokens { get; init; }

    private bool packedAsMatrix;

    private bool PacksAsMatrix => FedTokens && KernelSize == (1, 1) && Stride == (1, 1) && Padding == (0, 0) && Groups == 1
        && Linear.PacksEveryProduct;

    public override Tensor Forward(Tensor input)
    {
        var applies = input.DType == weight.DType && input.Dim == 4 && input.Device.Type == DeviceType.Cpu;
        if (prepacked.Get(weight, Bias, applies) is { } packed)
        {
            if (!packedAsMatrix) return Convolve(input, packed);
            using var scope = DisposeScope.Enter(); // an image through the matrix: as tokens and back
            var (n, h, w) = (input.Size(0), input.Size(2), input.Size(3));
            using var tokens = input.Permute(0, 2, 3, 1);
            var projected = Project(tokens, packed);
            return scope.Keep(projected.Reshape(n, h, w, OutChannels).Permute(0, 3, 1, 2).Contiguous());
        }
        return Functional.Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups);
    }

    /// <summary>
    /// Tokens [..., C] through this 1×1 convolution, [..., O], on the weight packed as a matrix (<see cref="FedTokens"/>);
    /// null where that path does not apply (autograd, another dtype or device, the weight packed for libtorch's kernel):
    /// the caller then convolves the image as before.
    /// </summary>
    public Tensor? TryForwardTokens(Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (!PacksAsMatrix || tokens.DType != weight.DType || tokens.Device.Type != DeviceType.Cpu || tokens.Dim < 1
            || tokens.Size(-1) != InChannels)
            return null;
        if (prepacked.Get(weight, Bias, applies: true) is not { } packed || !packedAsMatrix) return null;
        return Project(tokens, packed);
    }

    /// <summary>Tokens [..., C] through the weight packed as a linear layer's matrix.</summary>
    private Tensor Project(Tensor tokens, Tensor packed) =>
        new(NativeMethods.LinearPrepacked(tokens.Handle, packed.Handle, Bias?.Handle ?? IntPtr.Zero), "linear_prepacked");

    private unsafe Tensor Prepack(Tensor w)
    {
        packedAsMatrix = PacksAsMatrix;
        if (packedAsMatrix)
        {
            using var matrix = w.Reshape(OutChannels, InChannels);
            return new Tensor(NativeMethods.LinearPrepack(matrix.Handle), "linear_prepack").DetachFromDisposeScope();
        }
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

using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

public enum Reduction { None = 0, Mean = 1, Sum = 2 }

public enum InterpolationMode { Nearest = 0, Bilinear = 1, Bicubic = 2, NearestExact = 3 }

public enum PaddingMode { Constant = 0, Reflect = 1, Replicate = 2, Circular = 3 }

/// <summary>torch.nn.functional (native/src/nn.cpp).</summary>
public static class Functional
{
    private static IntPtr H(Tensor? t) => t?.Handle ?? IntPtr.Zero;

    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null) =>
        new(NativeMethods.Linear(input.Handle, weight.Handle, H(bias)), "linear");

    public static unsafe Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias = null, int stride = 1, int padding = 0,
        int dilation = 1, int groups = 1) =>
        Conv2d(input, weight, bias, (stride, stride), (padding, padding), (dilation, dilation), groups);

    public static unsafe Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, (int H, int W) stride, (int H, int W) padding,
        (int H, int W) dilation, int groups = 1)
    {
        long* s = stackalloc long[] { stride.H, stride.W };
        long* p = stackalloc long[] { padding.H, padding.W };
        long* d = stackalloc long[] { dilation.H, dilation.W };
        return new(NativeMethods.Conv2d(input.Handle, weight.Handle, H(bias), s, p, d, groups), "conv2d");
    }

    public static unsafe Tensor ConvTranspose2d(Tensor input, Tensor weight, Tensor? bias = null, int stride = 1, int padding = 0,
        int outputPadding = 0, int groups = 1, int dilation = 1)
    {
        long* s = stackalloc long[] { stride, stride };
        long* p = stackalloc long[] { padding, padding };
        long* o = stackalloc long[] { outputPadding, outputPadding };
        long* d = stackalloc long[] { dilation, dilation };
        return new(NativeMethods.ConvTranspose2d(input.Handle, weight.Handle, H(bias), s, p, o, groups, d), "conv_transpose2d");
    }

    public static Tensor GroupNorm(Tensor input, int groups, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5) =>
        new(NativeMethods.GroupNorm(input.Handle, groups, H(weight), H(bias), eps), "group_norm");

    /// <summary>
    /// silu(group_norm(input)) in one pass over the output (native/src/groupnorm.cpp) where <see cref="FusedNorm"/>
    /// applies, else GroupNorm then SiLU (in place on the fresh result when autograd is off).
    /// </summary>
    public static Tensor GroupNormSilu(Tensor input, int groups, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5) =>
        new(NativeMethods.GroupNormSilu(input.Handle, groups, H(weight), H(bias), eps, 1), "group_norm_silu");

    public static unsafe Tensor LayerNorm(Tensor input, long[] normalizedShape, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
    {
        fixed (long* s = normalizedShape)
            return new(NativeMethods.LayerNorm(input.Handle, s, normalizedShape.Length, H(weight), H(bias), eps), "layer_norm");
    }

    public static Tensor BatchNorm(Tensor input, Tensor? runningMean, Tensor? runningVar, Tensor? weight = null, Tensor? bias = null,
        bool training = false, double momentum = 0.1, double eps = 1e-5) =>
        new(NativeMethods.BatchNorm(input.Handle, H(weight), H(bias), H(runningMean), H(runningVar), training ? 1 : 0, momentum, eps), "batch_norm");

    public static Tensor Embedding(Tensor indices, Tensor weight) => new(NativeMethods.Embedding(weight.Handle, indices.Handle), "embedding");

    public static Tensor Softmax(Tensor input, long dim) => new(NativeMethods.Softmax(input.Handle, dim), "softmax");
    public static Tensor LogSoftmax(Tensor input, long dim) => new(NativeMethods.LogSoftmax(input.Handle, dim), "log_softmax");

    public static Tensor Relu(Tensor input) => input.Relu();
    public static Tensor Silu(Tensor input) => input.Silu();
    public static Tensor Sigmoid(Tensor input) => input.Sigmoid();
    public static Tensor Tanh(Tensor input) => input.Tanh();
    public static Tensor LeakyRelu(Tensor input, double negativeSlope = 0.01) => new(NativeMethods.LeakyRelu(input.Handle, negativeSlope), "leaky_relu");

    /// <summary>GELU: exact (erf) by default, or the tanh approximation ("gelu_pytorch_tanh").</summary>
    public static Tensor Gelu(Tensor input, bool tanhApproximation = false) => new(NativeMethods.Gelu(input.Handle, tanhApproximation ? 1 : 0), "gelu");

    /// <summary>
    /// GEGLU's activation: hidden · gelu(gate) (exact GELU) where <paramref name="input"/> [..., 2n] is [hidden, gate]
    /// along its last dimension, as diffusers' GEGLU splits its projection (<c>chunk(2, dim=-1)</c>). Without autograd,
    /// f32 and bf16 on a CPU with AVX-512, one fused pass (native/src/geglu.cpp; bf16 computed in f32 and rounded once);
    /// otherwise, or with <c>LDTORCH_FUSED_GEGLU=0</c>, the chunk, GELU and product ops.
    /// </summary>
    public static Tensor Geglu(Tensor input) => new(NativeMethods.Geglu(input.Handle), "geglu");

    /// <summary>Whether <see cref="Geglu"/> can run fused here (AVX-512 and not turned off by <c>LDTORCH_FUSED_GEGLU=0</c>).</summary>
    public static bool FusedGegluAvailable => NativeMethods.GegluFusedAvailable() == 1;

    /// <summary>CLIP's quick_gelu: x · sigmoid(1.702 x).</summary>
    public static Tensor QuickGelu(Tensor input)
    {
        using var scaled = input * 1.702;
        using var gate = scaled.Sigmoid();
        return input * gate;
    }

    public static Tensor Dropout(Tensor input, double p = 0.5, bool training = true)
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability must be in [0, 1]");
        return new(NativeMethods.Dropout(input.Handle, p, training ? 1 : 0), "dropout");
    }

    /// <summary>Resizes a [N, C, H, W] tensor to <paramref name="size"/> (H, W).</summary>
    public static unsafe Tensor Interpolate(Tensor input, (long H, long W) size, InterpolationMode mode = InterpolationMode.Nearest, bool alignCorners = false)
    {
        long* s = stackalloc long[] { size.H, size.W };
        return new(NativeMethods.Interpolate(input.Handle, (int)mode, s, null, alignCorners ? 1 : 0), "interpolate");
    }

    /// <summary>Resizes a [N, C, H, W] tensor by <paramref name="scaleFactor"/>.</summary>
    public static unsafe Tensor Interpolate(Tensor input, double scaleFactor, InterpolationMode mode = InterpolationMode.Nearest, bool alignCorners = false)
    {
        var shape = input.Shape;
        if (shape.Length != 4) throw new ArgumentException("interpolate expects a 4-D [N, C, H, W] tensor");
        double* f = stackalloc double[] { scaleFactor, scaleFactor };
        var h = NativeMethods.Interpolate(input.Handle, (int)mode, null, f, alignCorners ? 1 : 0);
        return new(h, "interpolate");
    }

    /// <summary>torch.nn.functional.pad: <paramref name="pads"/> lists (left, right, top, bottom, …), last dimension first.</summary>
    public static unsafe Tensor Pad(Tensor input, long[] pads, PaddingMode mode = PaddingMode.Constant, double value = 0)
    {
        fixed (long* p = pads) return new(NativeMethods.Pad(input.Handle, p, pads.Length, (int)mode, value), "pad");
    }

    public static Tensor PixelShuffle(Tensor input, int upscaleFactor) => new(NativeMethods.PixelShuffle(input.Handle, upscaleFactor), "pixel_shuffle");
    public static Tensor PixelUnshuffle(Tensor input, int downscaleFactor) => new(NativeMethods.PixelUnshuffle(input.Handle, downscaleFactor), "pixel_unshuffle");

    public static unsafe Tensor AvgPool2d(Tensor input, int kernelSize, int? stride = null, int padding = 0)
    {
        long st = stride ?? kernelSize;
        long* k = stackalloc long[] { kernelSize, kernelSize };
        long* s = stackalloc long[] { st, st };
        long* p = stackalloc long[] { padding, padding };
        return new(NativeMethods.AvgPool2d(input.Handle, k, s, p), "avg_pool2d");
    }

    public static unsafe Tensor MaxPool2d(Tensor input, int kernelSize, int? stride = null, int padding = 0)
    {
        long st = stride ?? kernelSize;
        long* k = stackalloc long[] { kernelSize, kernelSize };
        long* s = stackalloc long[] { st, st };
        long* p = stackalloc long[] { padding, padding };
        return new(NativeMethods.MaxPool2d(input.Handle, k, s, p), "max_pool2d");
    }

    public static unsafe Tensor AdaptiveAvgPool2d(Tensor input, (long H, long W) outputSize)
    {
        long* s = stackalloc long[] { outputSize.H, outputSize.W };
        return new(NativeMethods.AdaptiveAvgPool2d(input.Handle, s), "adaptive_avg_pool2d");
    }

    /// <summary>
    /// softmax(q kᵀ · scale + mask) v over [..., L, E] tensors. The mask is boolean (true = attend)
    /// or additive. libtorch ≥ 2.1 runs its fused kernel; 1.13 the same math step by step.
    /// </summary>
    public static Tensor ScaledDotProductAttention(Tensor query, Tensor key, Tensor value, Tensor? mask = null,
        double dropout = 0, bool isCausal = false, double? scale = null) =>
        new(NativeMethods.ScaledDotProductAttention(query.Handle, key.Handle, value.Handle, H(mask), dropout, isCausal ? 1 : 0, scale ?? 0), "scaled_dot_product_attention");

    public static Tensor MseLoss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean) =>
        new(NativeMethods.MseLoss(input.Handle, target.Handle, (int)reduction), "mse_loss");

    public static Tensor L1Loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean) =>
        new(NativeMethods.L1Loss(input.Handle, target.Handle, (int)reduction), "l1_loss");

    public static Tensor SmoothL1Loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean, double beta = 1.0) =>
        new(NativeMethods.SmoothL1Loss(input.Handle, target.Handle, (int)reduction, beta), "smooth_l1_loss");

    /// <summary>Cross-entropy of logits [N, C] against class indices [N] (int64).</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, Reduction reduction = Reduction.Mean, long ignoreIndex = -100, double labelSmoothing = 0) =>
        new(NativeMethods.CrossEntropy(logits.Handle, target.Handle, (int)reduction, ignoreIndex, labelSmoothing), "cross_entropy");

    public static Tensor BinaryCrossEntropyWithLogits(Tensor input, Tensor target, Reduction reduction = Reduction.Mean) =>
        new(NativeMethods.BceWithLogits(input.Handle, target.Handle, (int)reduction), "binary_cross_entropy_with_logits");
}

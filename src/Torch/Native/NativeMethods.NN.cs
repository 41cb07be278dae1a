using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/nn.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_conv2d")] internal static partial IntPtr Conv2d(IntPtr x, IntPtr w, IntPtr b, long* stride, long* padding, long* dilation, long groups);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_has_mkldnn")] internal static partial int HasMkldnn();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_conv2d_prepack")] internal static partial IntPtr Conv2dPrepack(IntPtr w, long* stride, long* padding, long* dilation, long groups);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_conv2d_prepacked")] internal static partial IntPtr Conv2dPrepacked(IntPtr x, IntPtr packed, IntPtr b, long* stride, long* padding, long* dilation, long groups);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_tensor_version")] internal static partial long TensorVersion(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_conv2d_unpack")] internal static partial IntPtr Conv2dUnpack(IntPtr packed, long* shape);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_tensor_bytes")] internal static partial long TensorBytes(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_conv_transpose2d")] internal static partial IntPtr ConvTranspose2d(IntPtr x, IntPtr w, IntPtr b, long* stride, long* padding, long* outputPadding, long groups, long* dilation);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_group_norm")] internal static partial IntPtr GroupNorm(IntPtr x, long groups, IntPtr w, IntPtr b, double eps);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_group_norm_silu")] internal static partial IntPtr GroupNormSilu(IntPtr x, long groups, IntPtr w, IntPtr b, double eps, int silu);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_fused_norm_set")] internal static partial int FusedNormSet(int mode);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_layer_norm")] internal static partial IntPtr LayerNorm(IntPtr x, long* shape, int ndim, IntPtr w, IntPtr b, double eps);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_batch_norm")] internal static partial IntPtr BatchNorm(IntPtr x, IntPtr w, IntPtr b, IntPtr runningMean, IntPtr runningVar, int training, double momentum, double eps);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_embedding")] internal static partial IntPtr Embedding(IntPtr weight, IntPtr indices);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_softmax")] internal static partial IntPtr Softmax(IntPtr x, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_log_softmax")] internal static partial IntPtr LogSoftmax(IntPtr x, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_leaky_relu")] internal static partial IntPtr LeakyRelu(IntPtr x, double slope);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_dropout")] internal static partial IntPtr Dropout(IntPtr x, double p, int train);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_interpolate")] internal static partial IntPtr Interpolate(IntPtr x, int mode, long* size, double* scale, int alignCorners);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_pad")] internal static partial IntPtr Pad(IntPtr x, long* pads, int npads, int mode, double value);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_pixel_shuffle")] internal static partial IntPtr PixelShuffle(IntPtr x, long factor);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_pixel_unshuffle")] internal static partial IntPtr PixelUnshuffle(IntPtr x, long factor);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_avg_pool2d")] internal static partial IntPtr AvgPool2d(IntPtr x, long* kernel, long* stride, long* padding);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_max_pool2d")] internal static partial IntPtr MaxPool2d(IntPtr x, long* kernel, long* stride, long* padding);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_adaptive_avg_pool2d")] internal static partial IntPtr AdaptiveAvgPool2d(IntPtr x, long* size);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_scaled_dot_product_attention")] internal static partial IntPtr ScaledDotProductAttention(IntPtr q, IntPtr k, IntPtr v, IntPtr mask, double dropout, int isCausal, double scale);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_mse_loss")] internal static partial IntPtr MseLoss(IntPtr x, IntPtr y, int reduction);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_l1_loss")] internal static partial IntPtr L1Loss(IntPtr x, IntPtr y, int reduction);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_smooth_l1_loss")] internal static partial IntPtr SmoothL1Loss(IntPtr x, IntPtr y, int reduction, double beta);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cross_entropy")] internal static partial IntPtr CrossEntropy(IntPtr logits, IntPtr target, int reduction, long ignoreIndex, double labelSmoothing);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_bce_with_logits")] internal static partial IntPtr BceWithLogits(IntPtr x, IntPtr y, int reduction);
}

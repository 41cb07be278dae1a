using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/tensor.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_free")] internal static partial void Free(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_alias")] internal static partial IntPtr Alias(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_dim")] internal static partial int Dim(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_shape")] internal static partial int Shape(IntPtr t, long* shape, int cap);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_strides")] internal static partial int Strides(IntPtr t, long* strides, int cap);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_numel")] internal static partial long NumEl(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_dtype")] internal static partial int DType(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_device")] internal static partial int Device(IntPtr t, int* type, int* index);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_is_contiguous")] internal static partial int IsContiguous(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_requires_grad")] internal static partial int RequiresGrad(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_requires_grad")] internal static partial int SetRequiresGrad(IntPtr t, int flag);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_is_leaf")] internal static partial int IsLeaf(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_from_data")] internal static partial IntPtr FromData(void* data, long* shape, int ndim, int dtype);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_copy_to_buffer")] internal static partial int CopyToBuffer(IntPtr t, void* dst, long nbytes);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_data_ptr")] internal static partial int DataPtr(IntPtr t, void** data);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_item")] internal static partial int Item(IntPtr t, double* value);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_item_int64")] internal static partial int ItemInt64(IntPtr t, long* value);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_to")] internal static partial IntPtr To(IntPtr t, int dtype, int deviceType, int deviceIndex, int nonBlocking, int copy);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_contiguous")] internal static partial IntPtr Contiguous(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_clone")] internal static partial IntPtr Clone(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_detach")] internal static partial IntPtr Detach(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_copy_")] internal static partial int Copy_(IntPtr dst, IntPtr src);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_fill_")] internal static partial int Fill_(IntPtr t, double value);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_zero_")] internal static partial int Zero_(IntPtr t);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_equal")] internal static partial int Equal(IntPtr a, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_empty")] internal static partial IntPtr Empty(long* shape, int ndim, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_zeros")] internal static partial IntPtr Zeros(long* shape, int ndim, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_ones")] internal static partial IntPtr Ones(long* shape, int ndim, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_full")] internal static partial IntPtr Full(long* shape, int ndim, double value, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_arange")] internal static partial IntPtr Arange(double start, double end, double step, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_linspace")] internal static partial IntPtr Linspace(double start, double end, long steps, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_rand")] internal static partial IntPtr Rand(long* shape, int ndim, IntPtr gen, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_randn")] internal static partial IntPtr Randn(long* shape, int ndim, IntPtr gen, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_randint")] internal static partial IntPtr Randint(long low, long high, long* shape, int ndim, IntPtr gen, int dtype, int dt, int di);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_uniform_")] internal static partial int Uniform_(IntPtr t, double from, double to, IntPtr gen);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_normal_")] internal static partial int Normal_(IntPtr t, double mean, double std, IntPtr gen);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_multinomial")] internal static partial IntPtr Multinomial(IntPtr probs, long n, int replacement, IntPtr gen);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_randperm")] internal static partial IntPtr Randperm(long n, IntPtr gen);
}

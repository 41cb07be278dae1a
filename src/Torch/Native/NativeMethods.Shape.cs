using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/shape.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_reshape")] internal static partial IntPtr Reshape(IntPtr a, long* shape, int ndim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_view")] internal static partial IntPtr View(IntPtr a, long* shape, int ndim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_permute")] internal static partial IntPtr Permute(IntPtr a, long* dims, int ndim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_transpose")] internal static partial IntPtr Transpose(IntPtr a, long d0, long d1);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_flatten")] internal static partial IntPtr Flatten(IntPtr a, long start, long end);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_squeeze")] internal static partial IntPtr Squeeze(IntPtr a, long dim, int hasDim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_unsqueeze")] internal static partial IntPtr Unsqueeze(IntPtr a, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_expand")] internal static partial IntPtr Expand(IntPtr a, long* shape, int ndim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_repeat")] internal static partial IntPtr Repeat(IntPtr a, long* repeats, int ndim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cat")] internal static partial IntPtr Cat(IntPtr* list, int n, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_stack")] internal static partial IntPtr Stack(IntPtr* list, int n, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_chunk")] internal static partial int Chunk(IntPtr a, long chunks, long dim, IntPtr* output, int cap);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_split")] internal static partial int Split(IntPtr a, long* sizes, int nsizes, long dim, IntPtr* output, int cap);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_narrow")] internal static partial IntPtr Narrow(IntPtr a, long dim, long start, long length);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_slice")] internal static partial IntPtr Slice(IntPtr a, long dim, long start, long end, long step);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_select")] internal static partial IntPtr Select(IntPtr a, long dim, long index);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_index_select")] internal static partial IntPtr IndexSelect(IntPtr a, long dim, IntPtr index);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_gather")] internal static partial IntPtr Gather(IntPtr a, long dim, IntPtr index);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_index_put")] internal static partial IntPtr IndexPut(IntPtr a, IntPtr index, IntPtr values);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_triu")] internal static partial IntPtr Triu(IntPtr a, long diagonal);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_tril")] internal static partial IntPtr Tril(IntPtr a, long diagonal);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_flip")] internal static partial IntPtr Flip(IntPtr a, long* dims, int ndims);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_roll")] internal static partial IntPtr Roll(IntPtr a, long shift, long dim);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_nonzero")] internal static partial IntPtr Nonzero(IntPtr a);
}

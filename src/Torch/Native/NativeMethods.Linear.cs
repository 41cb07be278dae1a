using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/linear.cpp (and onednn.cpp behind it) and native/src/geglu.cpp.
internal static partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_linear")] internal static partial IntPtr Linear(IntPtr x, IntPtr w, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_onednn_direct")] internal static partial int OneDnnDirect();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_onednn_direct")] internal static partial int SetOneDnnDirect(int mode);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_linear_prepack")] internal static partial IntPtr LinearPrepack(IntPtr w);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_linear_prepacked")] internal static partial IntPtr LinearPrepacked(IntPtr x, IntPtr packed, IntPtr b);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_linear_prepacked_add")] internal static partial IntPtr LinearPrepackedAdd(IntPtr x, IntPtr packed, IntPtr b, IntPtr residual);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_linear_unpack")] internal static partial IntPtr LinearUnpack(IntPtr packed);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_geglu")] internal static partial IntPtr Geglu(IntPtr x);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_geglu_fused_available")] internal static partial int GegluFusedAvailable();
}

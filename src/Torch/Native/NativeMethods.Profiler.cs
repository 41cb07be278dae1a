using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/profiler.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_profiler_start")] internal static partial int ProfilerStart(int byShape);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_profiler_stop")] internal static partial int ProfilerStop();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_profiler_entry")]
    internal static partial int ProfilerEntry(int index, byte* name, int cap, long* calls, long* totalNs, double* flops);
}

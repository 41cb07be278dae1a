using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/errors.cpp and runtime.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_abi_version")] internal static partial int AbiVersion();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_last_error")] private static partial IntPtr LastErrorPtr();
    internal static string? LastError() => Marshal.PtrToStringUTF8(LastErrorPtr());
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_libtorch_version")] private static partial IntPtr LibTorchVersionPtr();
    internal static string LibTorchVersion() => Marshal.PtrToStringUTF8(LibTorchVersionPtr()) ?? "";
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_live_tensors")] internal static partial long LiveTensors();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_num_threads")] internal static partial int SetNumThreads(int n);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_get_num_threads")] internal static partial int GetNumThreads();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_thread_intra_op_threads")] internal static partial int SetThreadIntraOpThreads(int n);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_thread_state_capture")] internal static partial IntPtr ThreadStateCapture();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_thread_state_free")] internal static partial void ThreadStateFree(IntPtr state);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_thread_state_enter")] internal static partial IntPtr ThreadStateEnter(IntPtr state);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_thread_state_exit")] internal static partial void ThreadStateExit(IntPtr scope);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_blas_info")] private static partial IntPtr BlasInfoPtr();
    internal static string BlasInfo() => Marshal.PtrToStringUTF8(BlasInfoPtr()) ?? "";
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_openblas_set_num_threads")] internal static partial int OpenBlasSetNumThreads(int n);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cuda_is_available")] internal static partial int CudaIsAvailable();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cuda_device_count")] internal static partial int CudaDeviceCount();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cuda_synchronize")] internal static partial int CudaSynchronize(int index);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cuda_memory")] internal static partial int CudaMemory(int index, long* used, long* total);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_has_fused_attention")] internal static partial int HasFusedAttention();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_fused_attention")] internal static partial int SetFusedAttention(int mode);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_fused_attention_active")] internal static partial int FusedAttentionActive();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_set_attention_bf16_dot")] internal static partial int SetAttentionBf16Dot(int mode);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_attention_bf16_dot_active")] internal static partial int AttentionBf16DotActive();

    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cpu_cache_set_limit")] internal static partial int CpuCacheSetLimit(long bytes);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cpu_cache_trim")] internal static partial int CpuCacheTrim();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cpu_cache_pause")] internal static partial int CpuCachePause(int on);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_cpu_cache_stats")] internal static partial int CpuCacheStats(long* stats);

    [LibraryImport(LibTorch.Name, EntryPoint = "ld_generator_new")] internal static partial IntPtr GeneratorNew(ulong seed, int deviceType, int deviceIndex);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_generator_free")] internal static partial void GeneratorFree(IntPtr g);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_generator_manual_seed")] internal static partial int GeneratorManualSeed(IntPtr g, ulong seed);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_generator_get_state")] internal static partial int GeneratorGetState(IntPtr g, IntPtr* state);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_generator_set_state")] internal static partial int GeneratorSetState(IntPtr g, IntPtr state);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_manual_seed")] internal static partial int ManualSeed(ulong seed);
}

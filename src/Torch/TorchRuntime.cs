using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>The libtorch runtime: versions, threads, BLAS, CUDA, the global seed.</summary>
public static class TorchRuntime
{
    /// <summary>Seeds libtorch's global CPU generator (used where no Generator is passed).</summary>
    public static void ManualSeed(ulong seed) => Tensor.Check(NativeMethods.ManualSeed(seed), "manual_seed");

    public static string LibTorchVersion => NativeMethods.LibTorchVersion();

    /// <summary>ABI version of the loaded native library (equal to the managed one, or loading fails).</summary>
    public static int NativeAbiVersion => NativeMethods.AbiVersion();

    public static int ManagedAbiVersion => LibTorch.AbiVersion;

    /// <summary>Intra-op threads; libtorch's default is the number of cores.</summary>
    public static int Threads
    {
        get => NativeMethods.GetNumThreads();
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "thread count must be at least 1");
            Tensor.Check(NativeMethods.SetNumThreads(value), "set_num_threads");
        }
    }

    /// <summary>"openblas …", "mkl", "reference" (the slow netlib BLAS) or "unknown".</summary>
    public static string Blas => NativeMethods.BlasInfo();

    public static bool IsReferenceBlas => Blas == "reference";

    /// <summary>The OMP_WAIT_POLICY libtorch's OpenMP runtime started with.</summary>
    public static string OmpWaitPolicy
    {
        get
        {
            _ = NativeMethods.AbiVersion(); // loading the library is what sets it
            return Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset: libgomp's default, spin then sleep)";
        }
    }

    public static bool CudaIsAvailable => NativeMethods.CudaIsAvailable() == 1;

    public static int CudaDeviceCount => Math.Max(0, NativeMethods.CudaDeviceCount());

    public static void CudaSynchronize(int index = 0) => Tensor.Check(NativeMethods.CudaSynchronize(index), "cuda_synchronize");

    /// <summary>Bytes in use and total on CUDA device <paramref name="index"/>.</summary>
    public static unsafe (long Used, long Total) CudaMemory(int index = 0)
    {
        long used, total;
        Tensor.Check(NativeMethods.CudaMemory(index, &used, &total), "cuda_memory");
        return (used, total);
    }

    /// <summary>Whether scaled-dot-product attention runs libtorch's fused kernel (libtorch ≥ 2.1).</summary>
    public static bool HasFusedAttention => NativeMethods.HasFusedAttention() == 1;

    /// <summary>
    /// Whether inference attention (no mask, dropout, causal mask or autograd) on the calling thread runs the fused
    /// AVX-512 CPU kernel (native/src/attention.cpp) rather than libtorch's products and softmax block by block: on
    /// CPUs with AVX-512 unless the environment sets LDTORCH_FUSED_ATTENTION=0, or as <see cref="UseFusedCpuAttention"/> says.
    /// </summary>
    public static bool FusedCpuAttentionActive => NativeMethods.FusedAttentionActive() == 1;

    /// <summary>
    /// Turns the fused CPU attention kernel on (where the CPU has AVX-512) or off for the calling thread until the
    /// result is disposed, whatever LDTORCH_FUSED_ATTENTION says; other threads keep their own setting.
    /// </summary>
    public static IDisposable UseFusedCpuAttention(bool enabled) =>
        new ThreadMode(NativeMethods.SetFusedAttention, NativeMethods.SetFusedAttention(enabled ? 1 : 0));

    /// <summary>
    /// Whether linear-layer weights packed for inference on the calling thread are packed for oneDNN's matmul
    /// called directly (native/src/onednn.cpp), where libtorch links the system's oneDNN and its headers were
    /// found at build time, unless the environment sets LDTORCH_ONEDNN=0, or as <see cref="UseDirectOneDnn"/> says;
    /// otherwise as linear.cpp packs them (f32, few rows). A packed weight keeps running on the path it was packed for.
    /// </summary>
    public static bool DirectOneDnnActive => NativeMethods.OneDnnDirect() == 1;

    /// <summary>
    /// Turns the direct oneDNN path (<see cref="DirectOneDnnActive"/>) on (where it was built) or off for the weights the
    /// calling thread packs until the result is disposed, whatever LDTORCH_ONEDNN says; other threads keep their own.
    /// </summary>
    public static IDisposable UseDirectOneDnn(bool enabled) =>
        new ThreadMode(NativeMethods.SetOneDnnDirect, NativeMethods.SetOneDnnDirect(enabled ? 1 : 0));

    /// <summary>
    /// Whether bf16 inference attention on the calling thread, when it runs the fused CPU kernel, computes q kᵀ and
    /// p · v with AVX512-BF16 dot products (the probabilities rounded to bf16 for the second product) rather than
    /// widening bf16 to f32: on CPUs with AVX512-BF16 unless the environment sets LDTORCH_ATTENTION_BF16_DOT=0, or as
    /// <see cref="UseBf16DotAttention"/> says.
    /// </summary>
    public static bool Bf16DotAttentionActive => NativeMethods.AttentionBf16DotActive() == 1;

    /// <summary>
    /// Turns the fused kernel's bf16 dot-product path on (where the CPU has AVX512-BF16) or off (bf16 widened to f32)
    /// for the calling thread until the result is disposed, whatever LDTORCH_ATTENTION_BF16_DOT says.
    /// </summary>
    public static IDisposable UseBf16DotAttention(bool enabled) =>
        new ThreadMode(NativeMethods.SetAttentionBf16Dot, NativeMethods.SetAttentionBf16Dot(enabled ? 1 : 0));

    /// <summary>Puts a per-thread native switch back to its previous mode when disposed.</summary>
    private sealed class ThreadMode(Func<int, int> set, int previous) : IDisposable
    {
        private bool disposed;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            set(previous);
        }
    }
}

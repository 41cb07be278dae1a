using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch;

/// <summary>
/// glibc malloc settings for loading a model (issue 19). libtorch allocates through malloc; glibc serves a block from
/// its own mmap only above a threshold that starts at 128 KiB and rises (up to 32 MiB) to the largest mmapped block
/// freed so far. Loading and converting a model frees many such blocks, so later weights, their conversions and
/// the prepacked convolution copies (made while the plain weight is still alive, which is then released) come from
/// the heap instead and leave holes there that glibc keeps resident: the bf16 SD1.5 U-Net, 1.72 GB of weights, peaked
/// at 2.4–2.6 GB, ~0.8 GB of it freed memory. Inside <see cref="MapWeights"/> every block of 64 KiB or more is its own
/// mapping and goes back to the system when freed, so the resident memory follows the live weights; afterwards the
/// threshold is fixed at 32 MiB, where the dynamic one ends, so activations reuse heap memory as before (no page
/// faults per forward) and the trim threshold at twice that, as glibc's dynamic rule sets it.
/// Elsewhere (not Linux, or another C library) this does nothing. The scope also trims and pauses <see cref="CpuCache"/>
/// (its large blocks would otherwise keep freed weight memory resident).
/// </summary>
public static class NativeHeap
{
    private const int MTrimThreshold = -1;
    private const int MMmapThreshold = -3;
    private const int WeightThreshold = 64 << 10;
    private const int SteadyThreshold = 32 << 20;

    private static readonly Lock Gate = new();
    private static int depth;

    /// <summary>
    /// While the returned scope lives (scopes nest, and threads share one), blocks of 64 KiB or more are allocated as
    /// their own mappings: wrap the creation, loading, conversion and prepacking of inference weights in it.
    /// </summary>
    public static IDisposable MapWeights()
    {
        lock (Gate)
        {
            if (depth++ == 0)
            {
                Set(MMmapThreshold, WeightThreshold);
                CpuCache.Pause(true); // trims it; weights get glibc's own mappings, as above
            }
        }
        return new Scope();
    }

    private sealed class Scope : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            lock (Gate)
            {
                if (--depth != 0) return;
                CpuCache.Pause(false);
                Set(MMmapThreshold, SteadyThreshold);
                Set(MTrimThreshold, 2 * SteadyThreshold);
            }
        }
    }

    private static readonly bool IsGlibc = OperatingSystem.IsLinux() && Probe();

    private static bool Probe()
    {
        try
        {
            return Marshal.PtrToStringAnsi(GnuGetLibcVersion()) is not null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false; // musl or no libc by that name: its malloc has no such settings
        }
    }

    private static void Set(int parameter, int value)
    {
        if (IsGlibc) _ = Mallopt(parameter, value);
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int parameter, int value);

    [DllImport("libc", EntryPoint = "gnu_get_libc_version")]
    private static extern IntPtr GnuGetLibcVersion();
}

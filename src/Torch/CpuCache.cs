using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>
/// The cache of large CPU blocks in front of libtorch's CPU allocator (native/src/allocator.cpp, issue 19). Blocks of
/// 8 MiB or more (the activations of a 512² VAE decode are 32–128 MB) are mapped by the binding itself, 2 MiB-aligned
/// and advised as transparent huge pages, and a freed one is kept, up to <see cref="Limit"/> bytes in all (the oldest
/// given back first), for the next allocation of about its size: without it each such block was a fresh glibc mapping
/// whose every page faulted in again. It only reuses memory, so no result depends on it. <c>LDTORCH_CACHE_MB</c> sets
/// the limit in MiB when the library loads (default 1024; 0 turns the cache off). Pipelines <see cref="Trim"/> it when a
/// generation ends, and <see cref="NativeHeap.MapWeights"/> trims and pauses it while weights load.
/// </summary>
public static class CpuCache
{
    /// <summary>The environment variable that sets <see cref="Limit"/> in MiB when the library loads.</summary>
    public const string LimitVariable = "LDTORCH_CACHE_MB";

    /// <summary>The limit when <see cref="LimitVariable"/> is not set: 1 GiB.</summary>
    public const long DefaultLimit = 1024L << 20;

    /// <summary>The limit in bytes that a value of <see cref="LimitVariable"/> sets (null: the default).</summary>
    public static long LimitFromEnvironment(string? megabytes)
    {
        if (megabytes is null) return DefaultLimit;
        if (!long.TryParse(megabytes, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var mb) || mb > 1L << 30)
            throw new TorchException("load", $"{LimitVariable}={megabytes} is not a size in MiB (0 turns the CPU cache off)");
        return mb << 20;
    }

    /// <summary>The most bytes the cache keeps; 0: off (every block from libtorch's default allocator).</summary>
    public static long Limit
    {
        get => Stats().Limit;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Tensor.Check(NativeMethods.CpuCacheSetLimit(value), "cpu_cache_set_limit");
        }
    }

    /// <summary>Gives every cached block back to the system.</summary>
    public static void Trim() => Tensor.Check(NativeMethods.CpuCacheTrim(), "cpu_cache_trim");

    /// <summary>The limit, bytes cached, bytes of large blocks in use, and allocations served from the cache or not.</summary>
    public static unsafe CpuCacheStats Stats()
    {
        var s = stackalloc long[5];
        Tensor.Check(NativeMethods.CpuCacheStats(s), "cpu_cache_stats");
        return new CpuCacheStats(s[0], s[1], s[2], s[3], s[4]);
    }

    internal static void Pause(bool on) => Tensor.Check(NativeMethods.CpuCachePause(on ? 1 : 0), "cpu_cache_pause");
}

/// <summary>A snapshot of <see cref="CpuCache"/>: its limit, cached and live bytes, hits and misses.</summary>
public readonly record struct CpuCacheStats(long Limit, long CachedBytes, long LiveBytes, long Hits, long Misses);

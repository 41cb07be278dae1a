using System.Globalization;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Issue 19: the cache of large CPU blocks (native/src/allocator.cpp) reuses freed blocks of 8 MiB or more, keeps at
/// most its limit, gives everything back on trim, is off at limit 0, and never changes a result.
/// </summary>
[Collection(LiveTensorCount.Name)]
public sealed class CpuCacheTests : IDisposable
{
    private const long MiB = 1L << 20;
    private readonly long limit = CpuCache.Limit;

    public CpuCacheTests() => CpuCache.Trim();

    public void Dispose()
    {
        CpuCache.Limit = limit;
        CpuCache.Trim();
    }

    private static long ResidentBytes()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    private static Tensor Written(long bytes) => Tensors.Ones([bytes / 4]); // every page resident

    [Fact]
    public void AFreedLargeBlockServesTheNextAllocationOfItsSize()
    {
        CpuCache.Limit = 256 * MiB;
        Written(16 * MiB).Dispose();
        var before = CpuCache.Stats();
        Assert.Equal(16 * MiB, before.CachedBytes);
        using (var again = Written(16 * MiB))
        {
            var during = CpuCache.Stats();
            Assert.Equal(before.Hits + 1, during.Hits);
            Assert.Equal(before.Misses, during.Misses);
            Assert.Equal(0, during.CachedBytes);
            Assert.Equal(16 * MiB, during.LiveBytes - before.LiveBytes);
        }
        // a block up to twice the size serves a smaller one; a smaller block never serves a larger one
        using (Written(10 * MiB)) Assert.Equal(before.Hits + 2, CpuCache.Stats().Hits);
        using (Written(40 * MiB)) Assert.Equal(before.Misses + 1, CpuCache.Stats().Misses);
        // blocks under 8 MiB are the default allocator's
        Written(4 * MiB).Dispose();
        Assert.True(CpuCache.Stats().CachedBytes <= 40 * MiB);
    }

    [Fact]
    public void TheCacheKeepsAtMostItsLimitAndAMissGivesBackWhatItMaps()
    {
        CpuCache.Limit = 40 * MiB;
        var blocks = Enumerable.Range(0, 3).Select(_ => Written(16 * MiB)).ToList();
        foreach (var b in blocks) b.Dispose();
        Assert.Equal(32 * MiB, CpuCache.Stats().CachedBytes); // the third did not fit beside two
        Assert.Equal(0, CpuCache.Stats().LiveBytes);

        // 48 MiB is more than twice 16: a miss, which first unmaps 48 MiB of cached blocks (all there are)
        using (Written(48 * MiB)) Assert.Equal(0, CpuCache.Stats().CachedBytes);
        Assert.Equal(0, CpuCache.Stats().CachedBytes); // over the limit by itself: unmapped when freed
    }

    [Fact]
    public void TrimGivesTheCachedMemoryBackToTheSystem()
    {
        if (!OperatingSystem.IsLinux()) Assert.Fail("this test reads /proc/self/status (Linux)");
        CpuCache.Limit = 256 * MiB;
        const long bytes = 96 * MiB;
        var tensor = Written(bytes);
        var withTensor = ResidentBytes();
        tensor.Dispose();
        Assert.True(withTensor - ResidentBytes() < bytes / 4, "a freed block stays resident in the cache");
        var cached = ResidentBytes();
        CpuCache.Trim();
        var freed = cached - ResidentBytes();
        Assert.True(freed >= bytes * 3 / 4, $"trimming a cached {bytes / MiB} MiB block gave back {freed / MiB} MiB");
        Assert.Equal(0, CpuCache.Stats().CachedBytes);
    }

    [Fact]
    public void LimitZeroTurnsTheCacheOff()
    {
        if (!OperatingSystem.IsLinux()) Assert.Fail("this test reads /proc/self/status (Linux)");
        CpuCache.Limit = 0;
        var before = CpuCache.Stats();
        const long bytes = 96 * MiB; // above glibc's 32 MiB mmap threshold: its own mapping, unmapped when freed
        var tensor = Written(bytes);
        Assert.Equal(before.LiveBytes, CpuCache.Stats().LiveBytes); // not ours: the default allocator's
        var withTensor = ResidentBytes();
        tensor.Dispose();
        Assert.True(withTensor - ResidentBytes() >= bytes * 3 / 4, "with the cache off a freed block leaves at once");
        Assert.Equal(0, CpuCache.Stats().CachedBytes);
        Assert.Equal(before.Misses, CpuCache.Stats().Misses);
    }

    [Fact]
    public void TheEnvironmentVariableSetsTheLimitInMegabytes()
    {
        Assert.Equal(CpuCache.DefaultLimit, CpuCache.LimitFromEnvironment(null));
        Assert.Equal(0, CpuCache.LimitFromEnvironment("0"));
        Assert.Equal(256 * MiB, CpuCache.LimitFromEnvironment("256"));
        foreach (var bad in new[] { "", "-1", "1.5", "lots" })
        {
            var e = Assert.Throws<TorchException>(() => CpuCache.LimitFromEnvironment(bad));
            Assert.Contains(CpuCache.LimitVariable, e.Message, StringComparison.Ordinal);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuCache.Limit = -1);
    }

    [Fact]
    public void ResultsAreBitIdenticalWithTheCacheOnAndOff()
    {
        // activations of 8–32 MiB (the cached sizes): a convolution, GroupNorm and SiLU, as in the VAE decoder
        using var g = new Generator(7);
        using var x = Tensors.Randn([1, 32, 256, 256], g);
        using var w = Tensors.Randn([32, 32, 3, 3], g) * 0.05;
        using var norm = Tensors.Ones([32]);
        Tensor Run()
        {
            using var scope = DisposeScope.Enter();
            var h = x;
            for (int i = 0; i < 3; i++) h = Functional.Conv2d(Functional.GroupNorm(h, 8, norm, null).Silu(), w, padding: 1) + h;
            return scope.Keep(h);
        }
        CpuCache.Limit = 0;
        using var off = Run();
        CpuCache.Limit = 256 * MiB;
        using var first = Run();
        using var reused = Run(); // from blocks the first run freed
        Assert.True(CpuCache.Stats().Hits > 0);
        Assert.True(off.Equal(first));
        Assert.True(off.Equal(reused));
    }

    [Fact]
    public void ThreadsAllocatingAndFreeingAtOnceKeepTheAccountsAndTheValues()
    {
        CpuCache.Limit = 64 * MiB;
        var live = CpuCache.Stats().LiveBytes;
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, t =>
        {
            for (int i = 0; i < 20; i++)
            {
                var mib = 8 + (t * 7 + i * 3) % 20;
                using var a = Tensors.Full([mib * MiB / 4], t + i);
                using var sum = a.Sum();
                Assert.Equal((double)(t + i) * mib * MiB / 4, sum.Item(), 1e-3 * mib * MiB);
            }
        });
        var after = CpuCache.Stats();
        Assert.Equal(live, after.LiveBytes);
        Assert.True(after.CachedBytes <= 64 * MiB, $"{after.CachedBytes / MiB} MiB cached over a 64 MiB limit");
        Assert.True(after.Hits > 0);
    }
}

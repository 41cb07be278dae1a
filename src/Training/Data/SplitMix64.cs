namespace LatentDiffusion.Training.Data;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fully specified generator whose output never depends
/// on the .NET version, unlike <see cref="Random"/>. Used for data order and augmentation, where
/// a seed must give the same sequence forever (resumable runs, reproducible recipes).
/// </summary>
public struct SplitMix64(ulong seed)
{
    private ulong state = seed;

    public ulong Next()
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Skips <paramref name="count"/> values: the generator then gives what it would after that many <see cref="Next"/> calls.</summary>
    public void Skip(long count) => state += unchecked((ulong)count * 0x9E3779B97F4A7C15UL);

    /// <summary>Uniform in [0, <paramref name="bound"/>) without modulo bias (Lemire's method, with rejection).</summary>
    public int NextInt(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound), bound, "the bound must be positive");
        var threshold = (0UL - (ulong)bound) % (ulong)bound;
        while (true)
        {
            var r = Next();
            var product = (UInt128)r * (ulong)bound;
            if ((ulong)product >= threshold) return (int)(ulong)(product >> 64);
        }
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A seed derived from several values (e.g. run seed, epoch), mixed so that neighbours differ.</summary>
    public static ulong Mix(params ReadOnlySpan<ulong> values)
    {
        var g = new SplitMix64(0x6A09E667F3BCC908UL);
        ulong h = 0;
        foreach (var v in values)
        {
            g.state ^= v;
            h = g.Next() ^ (h * 31);
        }
        return h;
    }
}

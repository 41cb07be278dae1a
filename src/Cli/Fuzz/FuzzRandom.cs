using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>
/// The fuzzer's random source: SplitMix64, whose sequence never depends on the .NET version, so that
/// (family, seed, case index) reproduces a case forever.
/// </summary>
public sealed class FuzzRandom(ulong seed)
{
    private SplitMix64 generator = new(seed);

    /// <summary>The generator of one case: independent of how many cases ran before it.</summary>
    public static FuzzRandom ForCase(FuzzFamily family, ulong seed, int index) =>
        new(SplitMix64.Mix(seed, (ulong)family + 1, (ulong)index));

    /// <summary>Uniform in [0, bound).</summary>
    public int Next(int bound) => generator.NextInt(bound);

    /// <summary>Uniform in [min, max).</summary>
    public int Next(int min, int max) => min + generator.NextInt(max - min);

    public bool Chance(double p) => generator.NextDouble() < p;

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];

    public byte NextByte() => (byte)generator.Next();

    public byte[] Bytes(int count)
    {
        var bytes = new byte[count];
        for (var i = 0; i < count; i++) bytes[i] = NextByte();
        return bytes;
    }
}

using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Noise;

/// <summary>
/// One noise source per image of a batch: a draw of shape [n, …] takes one [1, …] draw from each
/// source and concatenates them. This is how diffusers draws with a list of generators, and what
/// lets image i of a batch use seed + i (as AUTOMATIC1111 does) and still equal a single-image run.
/// </summary>
public sealed class BatchNoise : INoiseSource, IDisposable
{
    private readonly IReadOnlyList<INoiseSource> sources;
    private readonly bool ownsSources;

    public BatchNoise(IReadOnlyList<INoiseSource> sources) : this(sources, ownsSources: true)
    {
    }

    private BatchNoise(IReadOnlyList<INoiseSource> sources, bool ownsSources)
    {
        if (sources.Count == 0) throw new ArgumentException("a batch needs at least one noise source", nameof(sources));
        this.sources = sources;
        this.ownsSources = ownsSources;
    }

    /// <summary>Number of images (one source each).</summary>
    public int Count => sources.Count;

    /// <summary>
    /// The sources of images <paramref name="offset"/> … <paramref name="offset"/> + <paramref name="count"/> − 1, for a
    /// chunk of a batch: each image keeps drawing from its own source, so chunked images equal unchunked ones.
    /// The slice shares the sources (disposing it leaves them to this batch).
    /// </summary>
    public BatchNoise Slice(int offset, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (offset + count > sources.Count) throw new ArgumentOutOfRangeException(nameof(count), count, $"images {offset}…{offset + count - 1} of a batch of {sources.Count}");
        return new BatchNoise(sources.Skip(offset).Take(count).ToList(), ownsSources: false);
    }

    /// <summary>Image i draws from a CPU generator seeded <paramref name="seed"/> + i.</summary>
    public static BatchNoise FromSeed(ulong seed, int images) =>
        new(Enumerable.Range(0, images).Select(i => (INoiseSource)new GeneratorNoise(seed + (ulong)i)).ToList());

    public Tensor Next(long[] shape, DType dtype, Device device)
    {
        if (shape.Length == 0 || shape[0] != sources.Count)
            throw new ArgumentException($"noise of shape [{string.Join(", ", shape)}] does not have one row per image ({sources.Count})");
        if (sources.Count == 1) return sources[0].Next(shape, dtype, device);
        var one = (long[])shape.Clone();
        one[0] = 1;
        using var scope = DisposeScope.Enter();
        var parts = sources.Select(s => s.Next(one, dtype, device)).ToList();
        return scope.Keep(Tensor.Cat(parts));
    }

    public void Dispose()
    {
        if (!ownsSources) return;
        foreach (var s in sources) (s as IDisposable)?.Dispose();
    }
}

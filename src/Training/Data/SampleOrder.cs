namespace LatentDiffusion.Training.Data;

/// <summary>
/// The order in which a run visits a dataset: an endless stream made of one permutation per epoch
/// (Fisher–Yates driven by <see cref="SplitMix64"/> seeded from (seed, epoch)), cut into batches of
/// <see cref="BatchSize"/>; a batch may straddle two epochs, so no sample is dropped. Batch k is a
/// pure function of (count, batch size, seed, k): resuming at step k needs nothing but k.
/// </summary>
public sealed class SampleOrder
{
    private long cachedEpoch = -1;
    private int[] cached = [];

    public int Count { get; }
    public int BatchSize { get; }
    public ulong Seed { get; }
    public bool Shuffle { get; }

    public SampleOrder(int count, int batchSize, ulong seed, bool shuffle = true)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "the dataset is empty");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be positive");
        Count = count;
        BatchSize = batchSize;
        Seed = seed;
        Shuffle = shuffle;
    }

    /// <summary>The epoch (0-based) that the first sample of batch <paramref name="batch"/> belongs to.</summary>
    public long EpochOf(long batch) => batch * BatchSize / Count;

    /// <summary>Dataset indices of batch <paramref name="batch"/> (0-based).</summary>
    public int[] Batch(long batch)
    {
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "the batch number must not be negative");
        var result = new int[BatchSize];
        var position = batch * BatchSize;
        for (int i = 0; i < BatchSize; i++, position++)
            result[i] = Permutation(position / Count)[(int)(position % Count)];
        return result;
    }

    /// <summary>The seed for random augmentation of batch <paramref name="batch"/>.</summary>
    public ulong AugmentationSeed(long batch) => SplitMix64.Mix(Seed, 0xA0A0, (ulong)batch);

    /// <summary>
    /// The distributed sampler: rank <paramref name="rank"/>'s share of batch <paramref name="batch"/>, the
    /// contiguous rows [rank·B/N, (rank + 1)·B/N) of the global batch. The shards of the N ranks are disjoint
    /// and together are the batch one process would take, row for row (torch's DistributedSampler
    /// interleaves instead; contiguous rows make the ranks' per-sample random draws line up with one process's).
    /// </summary>
    public (int[] Indices, BatchShard Shard) Shard(long batch, int rank, int worldSize)
    {
        if (worldSize < 1 || BatchSize % worldSize != 0)
            throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, $"the batch size {BatchSize} must be a multiple of the world size");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, "the rank must be in 0..world size − 1");
        var all = Batch(batch);
        if (worldSize == 1) return (all, default);
        var per = BatchSize / worldSize;
        return (all[(rank * per)..((rank + 1) * per)], new BatchShard(rank * per, BatchSize));
    }


    private int[] Permutation(long epoch)
    {
        if (epoch == cachedEpoch) return cached;
        var order = new int[Count];
        for (int i = 0; i < Count; i++) order[i] = i;
        if (Shuffle)
        {
            var rng = new SplitMix64(SplitMix64.Mix(Seed, 0x5EED, (ulong)epoch));
            for (int i = Count - 1; i > 0; i--)
            {
                var j = rng.NextInt(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        }
        cachedEpoch = epoch;
        cached = order;
        return order;
    }
}

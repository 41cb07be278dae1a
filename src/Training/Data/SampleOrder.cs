namespace LatentDiffusion.Training.Data;

/// <summary>
/// The order in which a run visits a dataset: an endless stream made of one permutation per epoch
/// (Fisher–Yates driven by <see cref="SplitMix64"/> seeded from (seed, epoch)), cut into batches of
/// <see cref="BatchSize"/>; a batch may straddle two epochs, so no sample is dropped. Batch k is a
/// pure function of (count, batch size, seed, k): resuming at step k needs nothing but k. A bucketed order
/// (<see cref="Bucketed"/>) draws every batch from one bucket instead.
/// </summary>
public sealed class SampleOrder
{
    private long cachedEpoch = -1;
    private int[] cached = [];
    private readonly int[][]? buckets;
    private readonly long batchesPerEpoch;
    private long cachedBatchesEpoch = -1;
    private int[][] cachedBatches = [];

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

    /// <summary>
    /// kohya's bucketed batches (BucketBatchIndex): each epoch shuffles every bucket's items, cuts each bucket into batches of
    /// <paramref name="batchSize"/> and shuffles the list of all batches, so a batch holds items of one bucket only. Every
    /// batch has <paramref name="batchSize"/> rows: a bucket's last, short batch is filled up from the start of that bucket's
    /// order (kohya's stays short), so the data-parallel shards and the loss scale stay those of a full batch. The number of
    /// batches per epoch is fixed (Σ ⌈bucket size / batch size⌉), so batch k is again a pure function of k.
    /// </summary>
    public static SampleOrder Bucketed(IReadOnlyList<int[]> buckets, int batchSize, ulong seed, bool shuffle = true) =>
        new(buckets, batchSize, seed, shuffle);

    private SampleOrder(IReadOnlyList<int[]> buckets, int batchSize, ulong seed, bool shuffle)
        : this(buckets.Sum(b => b.Length), batchSize, seed, shuffle)
    {
        if (buckets.Any(b => b.Length == 0)) throw new ArgumentException("a bucket is empty", nameof(buckets));
        this.buckets = [.. buckets.Select(b => b.ToArray())];
        batchesPerEpoch = this.buckets.Sum(b => (b.Length + (long)batchSize - 1) / batchSize);
    }

    /// <summary>The epoch (0-based) that the first sample of batch <paramref name="batch"/> belongs to.</summary>
    public long EpochOf(long batch) => buckets is null ? batch * BatchSize / Count : batch / batchesPerEpoch;

    /// <summary>Dataset indices of batch <paramref name="batch"/> (0-based).</summary>
    public int[] Batch(long batch)
    {
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "the batch number must not be negative");
        if (buckets is not null) return (int[])EpochBatches(batch / batchesPerEpoch)[(int)(batch % batchesPerEpoch)].Clone();
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


    private int[][] EpochBatches(long epoch)
    {
        if (epoch == cachedBatchesEpoch) return cachedBatches;
        var batches = new List<int[]>((int)batchesPerEpoch);
        for (int b = 0; b < buckets!.Length; b++)
        {
            var items = (int[])buckets[b].Clone();
            if (Shuffle) Shuffled(items, SplitMix64.Mix(Seed, 0xB0C7, (ulong)epoch, (ulong)b));
            for (int start = 0; start < items.Length; start += BatchSize)
                batches.Add([.. Enumerable.Range(start, BatchSize).Select(i => items[i % items.Length])]);
        }
        var result = batches.ToArray();
        if (Shuffle) Shuffled(result, SplitMix64.Mix(Seed, 0xBA7C, (ulong)epoch));
        cachedBatchesEpoch = epoch;
        cachedBatches = result;
        return result;
    }

    /// <summary>Fisher–Yates from a <see cref="SplitMix64"/> stream.</summary>
    private static void Shuffled<T>(T[] items, ulong seed)
    {
        var rng = new SplitMix64(seed);
        for (int i = items.Length - 1; i > 0; i--)
        {
            var j = rng.NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private int[] Permutation(long epoch)
    {
        if (epoch == cachedEpoch) return cached;
        var order = new int[Count];
        for (int i = 0; i < Count; i++) order[i] = i;
        if (Shuffle) Shuffled(order, SplitMix64.Mix(Seed, 0x5EED, (ulong)epoch));
        cachedEpoch = epoch;
        cached = order;
        return order;
    }
}

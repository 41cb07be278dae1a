namespace LatentDiffusion.Training.Data;

/// <summary>
/// A finite, indexable training set. <see cref="GetBatch"/> runs on the loader thread, so it must not
/// touch state the training thread changes; random augmentation draws only from
/// <paramref name="augmentationSeed"/>, so that a batch is a pure function of (indices, seed) and a
/// resumed run sees exactly the batches an uninterrupted one would. Each row draws a fixed number of
/// values from the seed's stream, in order, starting <paramref name="firstRow"/> rows in: a data-parallel
/// rank's shard (rows k.. of the global batch) is then exactly those rows of the whole batch.
/// </summary>
public interface IDataset
{
    /// <summary>Number of items.</summary>
    int Count { get; }

    /// <summary>Shape of one item as the model sees it, e.g. [1, 32, 32] or [2].</summary>
    IReadOnlyList<long> ItemShape { get; }

    /// <summary>Stacks the items <paramref name="indices"/> into a batch (rows <paramref name="firstRow"/>.. of the batch whose seed is <paramref name="augmentationSeed"/>).</summary>
    Batch GetBatch(ReadOnlySpan<int> indices, ulong augmentationSeed, int firstRow = 0);
}

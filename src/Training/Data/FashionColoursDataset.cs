using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// "Fashion colours" as training batches: images [N, 3, 32, 32] in [-1, 1], labels (the class) and
/// captions. The caption of an item changes with the batch's augmentation seed (a new draw of
/// template, synonym and drop-out each time the item comes round), so a run sees every phrasing, and
/// a resumed run sees exactly the captions an uninterrupted one would.
/// </summary>
public sealed class FashionColoursDataset : IDataset
{
    private readonly int[] items;

    public FashionColours Data { get; }
    public bool RandomFlip { get; }
    public int Count => items.Length;
    public IReadOnlyList<long> ItemShape => [FashionColours.Channels, FashionColours.Side, FashionColours.Side];

    public FashionColoursDataset(FashionColours data, bool randomFlip = false, int? limit = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (limit is <= 0) throw new ArgumentOutOfRangeException(nameof(limit), limit, "the item limit must be positive");
        Data = data;
        RandomFlip = randomFlip;
        items = Enumerable.Range(0, limit is { } n ? Math.Min(n, data.Count) : data.Count).ToArray();
    }

    public Batch GetBatch(ReadOnlySpan<int> indices, ulong augmentationSeed, int firstRow = 0)
    {
        const int size = FashionColours.Channels * FashionColours.Side * FashionColours.Side;
        int n = indices.Length;
        var pixels = new float[n * size];
        var labels = new long[n];
        var captions = new string[n];
        var rng = new SplitMix64(augmentationSeed);
        rng.Skip(firstRow); // one draw per row
        var epoch = (int)(augmentationSeed & 0x3FFFFFFF);
        for (int b = 0; b < n; b++)
        {
            var item = items[indices[b]];
            bool flip = rng.Next() >> 63 == 1 && RandomFlip;
            Data.Render(item, pixels.AsSpan(b * size, size), flip);
            labels[b] = Data.Class(item);
            captions[b] = Data.Caption(item, epoch);
        }
        return new Batch(Tensor.From(pixels, n, FashionColours.Channels, FashionColours.Side, FashionColours.Side), Tensor.From(labels, n), captions);
    }
}

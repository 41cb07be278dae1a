using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// "Fashion colours" as training batches: images [N, 3, 32, 32] in [-1, 1], labels (the class) and
/// captions. The caption of an item changes with the batch's augmentation seed (a new draw of
/// template, synonym and drop-out each time the item comes round), so a run sees every phrasing, and
/// a resumed run sees exactly the captions an uninterrupted one would.
/// With a <see cref="NewColour"/> (teaching a LoRA a colour word the model never saw), a fixed fraction of the items
/// (a hash of the data seed and the item) is tinted with that colour and captioned with its name; the others keep
/// their colour and captions, so the old words stay in the data (regularisation).
/// </summary>
public sealed class FashionColoursDataset : IDataset
{
    private readonly int[] items;
    private readonly bool[] recoloured;

    public FashionColours Data { get; }
    public bool RandomFlip { get; }
    public int Count => items.Length;
    public IReadOnlyList<long> ItemShape => [FashionColours.Channels, FashionColours.Side, FashionColours.Side];

    /// <summary>The colour some items are tinted with instead of their own (null: none).</summary>
    public FashionColour? NewColour { get; }

    /// <summary>The fraction of items tinted with <see cref="NewColour"/>.</summary>
    public double NewColourFraction { get; }

    public FashionColoursDataset(FashionColours data, bool randomFlip = false, int? limit = null, FashionColour? newColour = null, double newColourFraction = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (limit is <= 0) throw new ArgumentOutOfRangeException(nameof(limit), limit, "the item limit must be positive");
        if (!(newColourFraction >= 0 && newColourFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(newColourFraction), newColourFraction, "the fraction must be in [0, 1]");
        Data = data;
        RandomFlip = randomFlip;
        NewColour = newColour;
        NewColourFraction = newColour is null ? 0 : newColourFraction;
        items = Enumerable.Range(0, limit is { } n ? Math.Min(n, data.Count) : data.Count).ToArray();
        recoloured = items.Select(i => new SplitMix64(SplitMix64.Mix(data.Options.Seed, (ulong)i, NewColourStream)).NextDouble() < NewColourFraction).ToArray();
    }

    private const ulong NewColourStream = 0xC0104;

    /// <summary>Whether item <paramref name="index"/> (0 … Count − 1) is tinted with <see cref="NewColour"/>.</summary>
    public bool IsRecoloured(int index) => recoloured[index];

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
            var colour = recoloured[indices[b]] ? NewColour! : FashionColours.Colours[Data.Colour(item)];
            FashionColours.Render(Data.Source.Image(item), colour, pixels.AsSpan(b * size, size), flip);
            labels[b] = Data.Class(item);
            captions[b] = Data.Caption(item, epoch, colour.Name);
        }
        return new Batch(Tensor.From(pixels, n, FashionColours.Channels, FashionColours.Side, FashionColours.Side), Tensor.From(labels, n), captions);
    }
}

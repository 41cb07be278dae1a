using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// Fashion-MNIST as DDPM training images: each 28×28 item padded with background to
/// <see cref="ImageSize"/> (32 by default, so that three halvings divide it), scaled from [0, 255]
/// to [−1, 1] (background −1), optionally mirrored left–right at random, optionally limited to some
/// classes (the MNIST write-up trains a single digit) and to the first <c>limit</c> items.
/// </summary>
public sealed class FashionMnistDataset : IDataset
{
    private readonly FashionMnist source;
    private readonly int[] items;
    private readonly int pad;

    public int ImageSize { get; }
    public bool RandomFlip { get; }
    public int Count => items.Length;
    public IReadOnlyList<long> ItemShape => [1, ImageSize, ImageSize];

    public FashionMnistDataset(FashionMnist source, int imageSize = 32, bool randomFlip = false, IReadOnlyCollection<int>? labels = null, int? limit = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (imageSize < FashionMnist.Side || (imageSize - FashionMnist.Side) % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, "Fashion-MNIST images are padded to the image size: use 28, 30, 32, …");
        if (labels is not null && labels.Any(l => l < 0 || l >= FashionMnist.ClassNames.Count))
            throw new ArgumentOutOfRangeException(nameof(labels), $"Fashion-MNIST labels are 0–9, got [{string.Join(", ", labels)}]");
        if (limit is <= 0) throw new ArgumentOutOfRangeException(nameof(limit), limit, "the item limit must be positive");
        this.source = source;
        ImageSize = imageSize;
        RandomFlip = randomFlip;
        pad = (imageSize - FashionMnist.Side) / 2;
        var chosen = Enumerable.Range(0, source.Count);
        if (labels is { Count: > 0 }) chosen = chosen.Where(i => labels.Contains(source.Labels[i]));
        if (limit is { } n) chosen = chosen.Take(n);
        items = chosen.ToArray();
        if (items.Length == 0) throw new DatasetException("Fashion-MNIST: no image has the requested labels");
    }

    /// <summary>The class of item <paramref name="index"/>.</summary>
    public int Label(int index) => source.Labels[items[index]];

    public Batch GetBatch(ReadOnlySpan<int> indices, ulong augmentationSeed, int firstRow = 0)
    {
        int side = ImageSize, n = indices.Length, plane = side * side;
        var pixels = new float[n * plane];
        var labels = new long[n];
        Array.Fill(pixels, -1f);
        var rng = new SplitMix64(augmentationSeed);
        rng.Skip(firstRow); // one draw per row
        for (int b = 0; b < n; b++)
        {
            var item = items[indices[b]];
            labels[b] = source.Labels[item];
            // Drawn for every item, flip or not, so that one item's draw never shifts another's.
            bool flip = rng.Next() >> 63 == 1 && RandomFlip;
            var image = source.Image(item);
            var offset = b * plane;
            for (int y = 0; y < FashionMnist.Side; y++)
            {
                var row = offset + (y + pad) * side + pad;
                for (int x = 0; x < FashionMnist.Side; x++)
                {
                    var value = image[y * FashionMnist.Side + x] / 127.5f - 1f;
                    pixels[row + (flip ? FashionMnist.Side - 1 - x : x)] = value;
                }
            }
        }
        return new Batch(Tensor.From(pixels, n, 1, side, side), Tensor.From(labels, n));
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// Images with their class (and, for Fashion colours, colour) labels, rendered on demand as 32×32
/// floats in [-1, 1]: what the classifier and the judge train and are tested on. A view: subsets
/// share the source's pixels.
/// </summary>
public sealed class LabelledImages
{
    public const int Side = 32;

    private readonly RenderItem render;
    private readonly RenderRecoloured? recolour;
    private readonly int[] indices;
    private readonly Func<int, int> classOf;
    private readonly Func<int, int>? colourOf;

    /// <summary>Writes source item <paramref name="index"/> as [C, 32, 32] floats, optionally mirrored.</summary>
    public delegate void RenderItem(int index, Span<float> chw, bool flip);

    /// <summary>Writes source item <paramref name="index"/> tinted with colour <paramref name="colour"/> instead of its own.</summary>
    public delegate void RenderRecoloured(int index, int colour, Span<float> chw, bool flip);

    public string Name { get; }
    public int Channels { get; }
    public int Count => indices.Length;
    public bool HasColours => colourOf is not null;

    /// <summary>Number of colours an item can be re-tinted with (0 when it cannot; see <see cref="Batch"/>).</summary>
    public int RecolourCount { get; }

    private LabelledImages(string name, int channels, int[] indices, RenderItem render, Func<int, int> classOf, Func<int, int>? colourOf,
        RenderRecoloured? recolour = null, int recolourCount = 0)
    {
        this.recolour = recolour;
        RecolourCount = recolourCount;
        Name = name;
        Channels = channels;
        this.indices = indices;
        this.render = render;
        this.classOf = classOf;
        this.colourOf = colourOf;
    }

    /// <summary>Fashion-MNIST in the DDPM format: 1 channel, 28×28 padded by 2 with background (−1).</summary>
    public static LabelledImages FromFashionMnist(FashionMnist data, string name = "Fashion-MNIST") =>
        new(name, 1, Enumerable.Range(0, data.Count).ToArray(), (i, chw, flip) => RenderGrey(data.Image(i), chw, flip), i => data.Labels[i], null);

    /// <summary>Fashion colours: 3 channels, with class and colour labels.</summary>
    public static LabelledImages FromFashionColours(FashionColours data, string name = "Fashion colours") =>
        new(name, FashionColours.Channels, Enumerable.Range(0, data.Count).ToArray(), (i, chw, flip) => data.Render(i, chw, flip), data.Class, data.Colour,
            (i, colour, chw, flip) => FashionColours.Render(data.Source.Image(i), FashionColours.Colours[colour], chw, flip), FashionColours.Colours.Count);

    /// <summary>The first <paramref name="count"/> items (all when fewer).</summary>
    public LabelledImages Take(int count) => new(Name, Channels, indices[..Math.Min(count, Count)], render, classOf, colourOf, recolour, RecolourCount);

    /// <summary>Items <paramref name="start"/> … start + count − 1.</summary>
    public LabelledImages Slice(int start, int count) =>
        new(Name, Channels, indices.AsSpan(start, count).ToArray(), render, classOf, colourOf, recolour, RecolourCount);

    public int Class(int i) => classOf(indices[i]);

    public int Colour(int i) => colourOf is { } f ? f(indices[i]) : throw new InvalidOperationException($"{Name} has no colour labels");

    /// <summary>
    /// Items <paramref name="items"/> (positions in this set) as a batch: images [N, C, 32, 32],
    /// classes [N] and colours [N] (int64; null without colour labels). <paramref name="flips"/>
    /// mirrors chosen items and <paramref name="recolours"/> re-tints them (augmentations; the colour
    /// labels follow the new tints).
    /// </summary>
    public (Tensor Images, Tensor Classes, Tensor? Colours) Batch(ReadOnlySpan<int> items, ReadOnlySpan<bool> flips = default, ReadOnlySpan<int> recolours = default)
    {
        if (!recolours.IsEmpty && recolour is null) throw new InvalidOperationException($"{Name} cannot be re-tinted");
        var size = Channels * Side * Side;
        var pixels = new float[items.Length * size];
        var classes = new long[items.Length];
        var colours = colourOf is null ? null : new long[items.Length];
        for (int k = 0; k < items.Length; k++)
        {
            var source = indices[items[k]];
            var flip = !flips.IsEmpty && flips[k];
            if (recolours.IsEmpty) render(source, pixels.AsSpan(k * size, size), flip);
            else recolour!(source, recolours[k], pixels.AsSpan(k * size, size), flip);
            classes[k] = classOf(source);
            if (colours is not null) colours[k] = recolours.IsEmpty ? colourOf!(source) : recolours[k];
        }
        var images = Tensor.From(pixels, items.Length, Channels, Side, Side);
        return (images, Tensor.From(classes, items.Length), colours is null ? null : Tensor.From(colours, items.Length));
    }

    /// <summary>Grey levels 0–255 → v/127.5 − 1, padded from 28 to 32 with −1 (the DDPM training format).</summary>
    public static void RenderGrey(ReadOnlySpan<byte> image, Span<float> destination, bool flip = false)
    {
        const int pad = (Side - FashionMnist.Side) / 2;
        for (int y = 0; y < Side; y++)
            for (int x = 0; x < Side; x++)
            {
                int sy = y - pad, sx = (flip ? Side - 1 - x : x) - pad;
                destination[y * Side + x] = sy is >= 0 and < FashionMnist.Side && sx is >= 0 and < FashionMnist.Side
                    ? image[sy * FashionMnist.Side + sx] / 127.5f - 1f
                    : -1f;
            }
    }
}

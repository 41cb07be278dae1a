using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Data;

/// <summary>A named ink colour of the "Fashion colours" data, in 0–255 RGB.</summary>
public sealed record FashionColour(string Name, byte R, byte G, byte B);

/// <summary>One item: its Fashion-MNIST class, its colour and (for one epoch) its caption.</summary>
public readonly record struct FashionColoursItem(int Index, int Class, int Colour, string Caption);

/// <summary>
/// "Fashion colours": Fashion-MNIST items padded to 32×32 and tinted with one of eight named
/// colours on a near-black background, 10 classes × 8 colours = 80 combinations, with captions.
/// Built on the fly: item i keeps Fashion-MNIST's image and class, its colour is a hash of (seed, i)
/// and its caption a hash of (seed, i, epoch), so a seed reproduces the data exactly without storing
/// it. In the training split (unless asked otherwise) the held-out combinations never occur: an item
/// of a class with a held-out colour draws from that class's other colours.
/// </summary>
public sealed class FashionColours
{
    public const int Side = 32;
    public const int Channels = 3;
    private const int Pad = (Side - FashionMnist.Side) / 2;

    /// <summary>
    /// The eight colours: fully saturated hues 0°, 30°, 60°, 120°, 180°, 240°, 280° and white, so
    /// that any two differ by at least 127 in some channel (red/orange/yellow differ in green only).
    /// </summary>
    public static readonly IReadOnlyList<FashionColour> Colours =
    [
        new("red", 255, 0, 0),
        new("orange", 255, 128, 0),
        new("yellow", 255, 255, 0),
        new("green", 0, 255, 0),
        new("cyan", 0, 255, 255),
        new("blue", 0, 0, 255),
        new("purple", 170, 0, 255),
        new("white", 255, 255, 255),
    ];

    /// <summary>
    /// Colours the embedded model never saw, for teaching it a new colour word with a LoRA: magenta (hue 300°,
    /// between purple's 280° and red's 360°). The trained judge's colour head knows only <see cref="Colours"/>;
    /// <see cref="Evaluation.TintJudge"/> measures any of them.
    /// </summary>
    public static readonly IReadOnlyList<FashionColour> NewColours =
    [
        new("magenta", 255, 0, 255),
    ];

    /// <summary>The near-black background (and padding) colour.</summary>
    public static readonly FashionColour Background = new("background", 12, 12, 16);

    public static IReadOnlyList<string> ClassNames => FashionMnist.ClassNames;

    public static int ClassIndex(string name) => IndexOf(ClassNames, name);

    public static int ColourIndex(string name) => IndexOf(Colours.Select(c => c.Name).ToList(), name);

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++)
            if (string.Equals(names[i], name, StringComparison.OrdinalIgnoreCase)) return i;
        return -1;
    }

    private readonly byte[] colours;
    private readonly bool[,] heldOut;

    public FashionMnist Source { get; }
    public FashionColoursOptions Options { get; }
    public bool IsTrain { get; }

    /// <summary>Whether held-out combinations may occur (false for the training split of a generative model).</summary>
    public bool IncludesHeldOut { get; }

    /// <summary>The held-out (class, colour) indices of <see cref="Options"/>.</summary>
    public IReadOnlyList<(int Class, int Colour)> HeldOut { get; }

    public int Count => Source.Count;

    /// <summary>
    /// The data over a loaded Fashion-MNIST split. <paramref name="includeHeldOut"/> defaults to false
    /// for the training split (a generative model never sees those combinations) and true for the test
    /// split; a judge is trained on the training split with it true (all 80 combinations).
    /// </summary>
    public FashionColours(FashionMnist source, bool train, FashionColoursOptions? options = null, bool? includeHeldOut = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        Source = source;
        Options = options ?? FashionColoursOptions.Default;
        IsTrain = train;
        IncludesHeldOut = includeHeldOut ?? !train;
        HeldOut = Options.Validate();
        heldOut = new bool[ClassNames.Count, Colours.Count];
        foreach (var (c, k) in HeldOut) heldOut[c, k] = true;

        colours = new byte[source.Count];
        var allowed = new List<int>(Colours.Count);
        for (int i = 0; i < source.Count; i++)
        {
            int cls = source.Labels[i];
            allowed.Clear();
            for (int k = 0; k < Colours.Count; k++)
                if (IncludesHeldOut || !heldOut[cls, k]) allowed.Add(k);
            colours[i] = (byte)allowed[(int)(Draw(i, Stream.Colour) * allowed.Count)];
        }
    }

    /// <summary>Loads Fashion-MNIST (see <see cref="FashionMnist.Load"/>) and builds the data over it.</summary>
    public static FashionColours Load(bool train, FashionColoursOptions? options = null, bool? includeHeldOut = null, string? directory = null) =>
        new(FashionMnist.Load(train, directory), train, options, includeHeldOut);

    public int Class(int index) => Source.Labels[index];

    public int Colour(int index) => colours[index];

    public bool IsHeldOut(int classIndex, int colourIndex) => heldOut[classIndex, colourIndex];

    /// <summary>
    /// The caption of item <paramref name="index"/> in <paramref name="epoch"/>: empty with probability
    /// <see cref="FashionColoursOptions.EmptyCaptionFraction"/>, else drawn from <see cref="Captions.Templates"/>.
    /// </summary>
    public string Caption(int index, int epoch = 0) => Caption(index, epoch, Colours[Colour(index)].Name);

    /// <summary>The caption of item <paramref name="index"/> in <paramref name="epoch"/> with its colour named <paramref name="colourName"/> (an item recoloured).</summary>
    public string Caption(int index, int epoch, string colourName)
    {
        var e = (ulong)epoch << 8;
        if (Draw(index, e | Stream.Empty) < Options.EmptyCaptionFraction) return "";
        return Captions.Sample(Class(index), colourName, Draw(index, e | Stream.Template), Draw(index, e | Stream.Synonym));
    }

    public FashionColoursItem Item(int index, int epoch = 0) => new(index, Class(index), Colour(index), Caption(index, epoch));

    /// <summary>Every caption the data can produce (held-out pairs named together left out when they cannot occur).</summary>
    public IEnumerable<string> CaptionCorpus() =>
        Captions.Corpus(Colours.Select(c => c.Name).ToList(), IncludesHeldOut ? null : (c, colour) => heldOut[c, ColourIndex(colour)]);

    /// <summary>Writes item <paramref name="index"/> as [3, 32, 32] floats in [-1, 1] (optionally mirrored left–right).</summary>
    public void Render(int index, Span<float> chw, bool flip = false) => Render(Source.Image(index), Colours[Colour(index)], chw, flip);

    /// <summary>
    /// Tints a 28×28 ink image: each channel is background + a·(colour − background) with a = ink/255,
    /// padded by 2 with background, then mapped from [0, 255] to [-1, 1] (v/127.5 − 1).
    /// </summary>
    public static void Render(ReadOnlySpan<byte> ink, FashionColour colour, Span<float> chw, bool flip = false)
    {
        if (ink.Length != FashionMnist.Side * FashionMnist.Side) throw new ArgumentException($"expected {FashionMnist.Side}×{FashionMnist.Side} ink, got {ink.Length} values");
        if (chw.Length != Channels * Side * Side) throw new ArgumentException($"destination holds {chw.Length} floats, not {Channels * Side * Side}");
        Span<float> bg = [Background.R, Background.G, Background.B];
        Span<float> fg = [colour.R, colour.G, colour.B];
        for (int ch = 0; ch < Channels; ch++)
        {
            var plane = chw.Slice(ch * Side * Side, Side * Side);
            float b = bg[ch], span = fg[ch] - bg[ch];
            for (int y = 0; y < Side; y++)
                for (int x = 0; x < Side; x++)
                {
                    int sy = y - Pad, sx = (flip ? Side - 1 - x : x) - Pad;
                    var a = sy is >= 0 and < FashionMnist.Side && sx is >= 0 and < FashionMnist.Side ? ink[sy * FashionMnist.Side + sx] / 255f : 0f;
                    plane[y * Side + x] = (b + a * span) / 127.5f - 1f;
                }
        }
    }

    /// <summary>Items <paramref name="indices"/> as one [N, 3, 32, 32] float tensor in [-1, 1].</summary>
    public Tensor Images(ReadOnlySpan<int> indices)
    {
        const int size = Channels * Side * Side;
        var data = new float[indices.Length * size];
        for (int i = 0; i < indices.Length; i++) Render(indices[i], data.AsSpan(i * size, size));
        return Tensor.From(data, indices.Length, Channels, Side, Side);
    }

    // ---- deterministic draws: SplitMix64 of (seed, index, stream) → uniform [0, 1) ----

    private static class Stream
    {
        public const ulong Colour = 1, Empty = 2, Template = 3, Synonym = 4;
    }

    private double Draw(int index, ulong stream)
    {
        var h = SplitMix(SplitMix(SplitMix(Options.Seed) ^ (ulong)index) ^ stream);
        return (h >> 11) * (1.0 / (1UL << 53));
    }

    private static ulong SplitMix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}

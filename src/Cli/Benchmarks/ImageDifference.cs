using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>
/// How far two 8-bit images of the same size are apart, over every channel value (issue 19's bf16 study):
/// the largest difference in levels, the mean absolute difference, PSNR (10·log10(255² / MSE), null when the images
/// are identical: infinite), and the fraction of values that differ by more than 2 levels.
/// </summary>
public sealed record ImageDifference(int MaxLevels, double MeanAbsLevels, double? PsnrDb, double FractionOver2Levels, long Values)
{
    /// <summary>Differences larger than this many levels are counted in <see cref="FractionOver2Levels"/>.</summary>
    public const int VisibleLevels = 2;

    // Kept to combine several comparisons exactly (the mean and the PSNR of the whole set, not the mean of the per-image numbers).
    internal long SumAbs { get; private init; }
    internal double SumSquares { get; private init; }
    internal long Over2 { get; private init; }

    /// <summary>The difference of <paramref name="a"/> and <paramref name="b"/>; they must have the same width, height and channels.</summary>
    public static ImageDifference Of(RgbImage a, RgbImage b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Width != b.Width || a.Height != b.Height || a.Channels != b.Channels)
            throw new ArgumentException($"cannot compare a {a.Width}×{a.Height}×{a.Channels} image with a {b.Width}×{b.Height}×{b.Channels} one");
        int max = 0;
        long sumAbs = 0, over = 0;
        double sumSquares = 0;
        var pa = a.Pixels;
        var pb = b.Pixels;
        for (int i = 0; i < pa.Length; i++)
        {
            var d = Math.Abs(pa[i] - pb[i]);
            if (d > max) max = d;
            sumAbs += d;
            sumSquares += d * d;
            if (d > VisibleLevels) over++;
        }
        return Make(max, sumAbs, sumSquares, over, pa.Length);
    }

    /// <summary>The difference over all the compared values of <paramref name="parts"/> together.</summary>
    public static ImageDifference Combine(IEnumerable<ImageDifference> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        int max = 0;
        long sumAbs = 0, over = 0, values = 0;
        double sumSquares = 0;
        foreach (var p in parts)
        {
            max = Math.Max(max, p.MaxLevels);
            sumAbs += p.SumAbs;
            sumSquares += p.SumSquares;
            over += p.Over2;
            values += p.Values;
        }
        if (values == 0) throw new ArgumentException("no images to combine", nameof(parts));
        return Make(max, sumAbs, sumSquares, over, values);
    }

    private static ImageDifference Make(int max, long sumAbs, double sumSquares, long over, long values)
    {
        var mse = sumSquares / values;
        return new ImageDifference(max, (double)sumAbs / values, mse == 0 ? null : 10 * Math.Log10(255.0 * 255.0 / mse), (double)over / values, values)
        {
            SumAbs = sumAbs,
            SumSquares = sumSquares,
            Over2 = over,
        };
    }
}

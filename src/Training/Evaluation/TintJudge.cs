using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// Names the colour of Fashion colours images by measuring their tint, for any palette: a rendered pixel is
/// background + a·(colour − background) with a the ink (<see cref="FashionColours.Render"/>), so the sum of
/// (pixel − background) over the inked pixels points along (colour − background) whatever the garment's shape.
/// The judge names the palette colour whose direction is nearest in angle. The trained judge's colour head knows
/// only the eight training colours; this measure also scores a new colour word (<see cref="FashionColours.NewColours"/>).
/// </summary>
public static class TintJudge
{
    /// <summary>A pixel counts as ink when some channel differs from the background by more than this (0–255).</summary>
    public const double InkThreshold = 64;

    /// <summary>The eight training colours and the new ones, in that order.</summary>
    public static IReadOnlyList<FashionColour> FullPalette { get; } = [.. FashionColours.Colours, .. FashionColours.NewColours];

    /// <summary>
    /// The index in <paramref name="palette"/> of each image's tint, for images [N, 3, H, W] in [-1, 1] (values
    /// outside clamped, as when saved); −1 for an image without ink pixels. The input stays the caller's.
    /// </summary>
    public static int[] Name(Tensor images, IReadOnlyList<FashionColour> palette)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(palette);
        if (palette.Count == 0) throw new ArgumentException("the palette is empty", nameof(palette));
        if (images.Dim != 4 || images.Size(1) != FashionColours.Channels)
            throw new ArgumentException($"expected images [N, 3, H, W], got [{string.Join(", ", images.Shape)}]");
        float[] pixels;
        using (var scope = DisposeScope.Enter())
            pixels = images.To(Device.CPU, DType.Float32).Clamp(-1, 1).Contiguous().ToArray<float>();
        int n = (int)images.Size(0), plane = (int)(images.Size(2) * images.Size(3));
        var background = new[] { FashionColours.Background.R, FashionColours.Background.G, FashionColours.Background.B };
        var directions = palette.Select(c => Unit([c.R - background[0], c.G - background[1], c.B - background[2]])).ToArray();
        var names = new int[n];
        Span<double> d = stackalloc double[3];
        for (int i = 0; i < n; i++)
        {
            var sum = new double[3];
            var ink = 0;
            for (int p = 0; p < plane; p++)
            {
                for (int ch = 0; ch < 3; ch++) d[ch] = (pixels[(i * 3 + ch) * plane + p] + 1) * 127.5 - background[ch];
                if (Math.Max(Math.Abs(d[0]), Math.Max(Math.Abs(d[1]), Math.Abs(d[2]))) <= InkThreshold) continue;
                for (int ch = 0; ch < 3; ch++) sum[ch] += d[ch];
                ink++;
            }
            names[i] = ink == 0 ? -1 : Nearest(Unit(sum), directions);
        }
        return names;
    }

    private static int Nearest(double[] direction, double[][] palette)
    {
        int best = 0;
        double bestCosine = double.NegativeInfinity;
        for (int k = 0; k < palette.Length; k++)
        {
            var cosine = direction[0] * palette[k][0] + direction[1] * palette[k][1] + direction[2] * palette[k][2];
            if (cosine > bestCosine) (best, bestCosine) = (k, cosine);
        }
        return best;
    }

    private static double[] Unit(double[] v)
    {
        var norm = Math.Sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        return norm == 0 ? v : [v[0] / norm, v[1] / norm, v[2] / norm];
    }
}

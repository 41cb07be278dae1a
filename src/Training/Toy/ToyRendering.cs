using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Training.Toy;

/// <summary>Scatter plots and animations of the toy's point clouds.</summary>
public static class ToyRendering
{
    public const int Size = 384;

    private static readonly Rgb DataColor = new(200, 200, 200);
    private static readonly Rgb SampleColor = new(214, 39, 40);

    /// <summary>
    /// A square range centred on 0 that holds 99.5 % of the points (at least ±0.25, the scaled
    /// S-curve's extent), the same on both axes so the curve keeps its shape; like matplotlib's
    /// autoscale in the write-up's plots, but immune to a few stray points.
    /// </summary>
    public static float Extent(PointFrame frame)
    {
        var magnitudes = frame.Coordinates.Select(MathF.Abs).Where(float.IsFinite).Order().ToArray();
        if (magnitudes.Length == 0) return 0.25f;
        var q = magnitudes[(int)Math.Min(magnitudes.Length - 1, Math.Floor(magnitudes.Length * 0.995))];
        return MathF.Max(0.25f, q * 1.1f);
    }

    public static RgbImage Render(PointFrame points, PointFrame? background = null, float? extent = null)
    {
        var r = extent ?? Extent(points);
        var series = new List<ScatterSeries>();
        if (background is not null) series.Add(new ScatterSeries(Pairs(background), DataColor));
        series.Add(new ScatterSeries(Pairs(points), SampleColor));
        var style = ScatterPlotStyle.Default with { PointRadius = points.Count > 5000 ? 0 : 1, Opacity = 0.6f };
        return ScatterPlot.Render(series, Size, Size, (-r, r), (-r, r), style);
    }

    /// <summary>Writes a scatter plot PNG of <paramref name="points"/> over the data in grey.</summary>
    public static string WriteScatter(string path, PointFrame points, PointFrame? background = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Render(points, background).SavePng(path);
        return path;
    }

    /// <summary>Writes an animated PNG, one frame per cloud, each scaled to its own extent.</summary>
    public static string WriteAnimation(string path, IReadOnlyList<PointFrame> frames, TimeSpan? delay = null)
    {
        if (frames.Count == 0) throw new ArgumentException("an animation needs at least one frame", nameof(frames));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var images = frames.Select(f => Render(f)).ToList();
        ApngEncoder.Save(path, images, delay ?? TimeSpan.FromMilliseconds(100));
        return path;
    }

    private static (float X, float Y)[] Pairs(PointFrame frame)
    {
        var result = new (float, float)[frame.Count];
        for (int i = 0; i < result.Length; i++) result[i] = (frame.Coordinates[2 * i], frame.Coordinates[2 * i + 1]);
        return result;
    }
}

using System.Globalization;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Points of one colour in a scatter plot.</summary>
public sealed record ScatterSeries(IReadOnlyList<(float X, float Y)> Points, Rgb Color);

/// <summary>Appearance of a scatter plot; the defaults suit a few thousand points on 512 × 512.</summary>
public sealed record ScatterPlotStyle
{
    public static ScatterPlotStyle Default { get; } = new();

    /// <summary>Radius of each point in pixels; 0 draws single pixels.</summary>
    public int PointRadius { get; init; } = 1;

    /// <summary>Opacity of each point, 0 to 1; below 1 dense regions show darker.</summary>
    public float Opacity { get; init; } = 1f;

    public bool ShowTickLabels { get; init; } = true;

    public Rgb Background { get; init; } = Rgb.White;

    public Rgb AxisColor { get; init; } = new(64, 64, 64);

    public Rgb GridColor { get; init; } = new(230, 230, 230);
}

/// <summary>
/// Maps data coordinates into the plot area of an image: x grows to the right, y upwards, and the
/// ranges' ends fall on the frame's first and last pixel.
/// </summary>
public readonly record struct PlotFrame(int Left, int Top, int Right, int Bottom, (float Min, float Max) XRange, (float Min, float Max) YRange)
{
    /// <summary>The pixel of a data point, or null when it lies outside the ranges (or is NaN).</summary>
    public (int X, int Y)? ToPixel(float x, float y)
    {
        if (!(x >= XRange.Min && x <= XRange.Max && y >= YRange.Min && y <= YRange.Max)) return null;
        double px = Left + (x - (double)XRange.Min) / ((double)XRange.Max - XRange.Min) * (Right - Left);
        double py = Bottom - (y - (double)YRange.Min) / ((double)YRange.Max - YRange.Min) * (Bottom - Top);
        return ((int)Math.Round(px), (int)Math.Round(py));
    }
}

/// <summary>Renders 2-D points onto an image with a frame, grid lines and numbered ticks, for toy-data demos.</summary>
public static class ScatterPlot
{
    private static readonly Rgb[] Palette = [new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189)];

    /// <summary>One series in the first palette colour (blue).</summary>
    public static RgbImage Render(IReadOnlyList<(float X, float Y)> points, int width, int height,
        (float Min, float Max) xRange, (float Min, float Max) yRange, ScatterPlotStyle? style = null) =>
        Render([new ScatterSeries(points, Palette[0])], width, height, xRange, yRange, style);

    /// <summary>Several series drawn in order, later ones on top.</summary>
    public static RgbImage Render(IReadOnlyList<ScatterSeries> series, int width, int height,
        (float Min, float Max) xRange, (float Min, float Max) yRange, ScatterPlotStyle? style = null)
    {
        style ??= ScatterPlotStyle.Default;
        var frame = Layout(width, height, xRange, yRange, style);
        var image = RgbImage.Filled(width, height, style.Background);
        var canvas = new Canvas(image);
        int scale = Scale(width, height);

        var xTicks = Ticks(xRange);
        var yTicks = Ticks(yRange);
        foreach (var t in xTicks)
            if (frame.ToPixel(t, yRange.Min) is { } p) canvas.FillRect(p.X, frame.Top, p.X, frame.Bottom, style.GridColor);
        foreach (var t in yTicks)
            if (frame.ToPixel(xRange.Min, t) is { } p) canvas.FillRect(frame.Left, p.Y, frame.Right, p.Y, style.GridColor);

        foreach (var s in series)
        {
            foreach (var (x, y) in s.Points)
                if (frame.ToPixel(x, y) is { } p) canvas.FillDisc(p.X, p.Y, style.PointRadius, s.Color, style.Opacity);
        }

        // The frame goes on top of points at the edges so the axes stay readable.
        canvas.FillRect(frame.Left - scale, frame.Top - scale, frame.Right + scale, frame.Top - 1, style.AxisColor);
        canvas.FillRect(frame.Left - scale, frame.Bottom + 1, frame.Right + scale, frame.Bottom + scale, style.AxisColor);
        canvas.FillRect(frame.Left - scale, frame.Top, frame.Left - 1, frame.Bottom, style.AxisColor);
        canvas.FillRect(frame.Right + 1, frame.Top, frame.Right + scale, frame.Bottom, style.AxisColor);

        int tick = 3 * scale;
        foreach (var t in xTicks)
        {
            if (frame.ToPixel(t, yRange.Min) is not { } p) continue;
            canvas.FillRect(p.X, frame.Bottom + scale, p.X + scale - 1, frame.Bottom + scale + tick, style.AxisColor);
            if (style.ShowTickLabels)
            {
                var label = Label(t);
                canvas.DrawText(label, p.X - TinyFont.Width(label, scale) / 2, frame.Bottom + 2 * scale + tick + scale, scale, style.AxisColor);
            }
        }
        foreach (var t in yTicks)
        {
            if (frame.ToPixel(xRange.Min, t) is not { } p) continue;
            canvas.FillRect(frame.Left - scale - tick, p.Y, frame.Left - scale, p.Y + scale - 1, style.AxisColor);
            if (style.ShowTickLabels)
            {
                var label = Label(t);
                canvas.DrawText(label, frame.Left - 2 * scale - tick - scale - TinyFont.Width(label, scale), p.Y - TinyFont.Height * scale / 2, scale, style.AxisColor);
            }
        }
        return image;
    }

    /// <summary>Where the plot area of a <paramref name="width"/> × <paramref name="height"/> plot lies; use it to find a point's pixel.</summary>
    public static PlotFrame Layout(int width, int height, (float Min, float Max) xRange, (float Min, float Max) yRange, ScatterPlotStyle? style = null)
    {
        style ??= ScatterPlotStyle.Default;
        if (!(xRange.Max > xRange.Min) || !(yRange.Max > yRange.Min) || !float.IsFinite(xRange.Max - xRange.Min) || !float.IsFinite(yRange.Max - yRange.Min))
            throw new ArgumentException($"axis ranges must be finite with Min < Max, got x {xRange} and y {yRange}");
        int scale = Scale(width, height);
        int pad = 4 * scale;
        int tick = 3 * scale;
        int left = pad + tick + scale, bottom = pad + tick + scale;
        if (style.ShowTickLabels)
        {
            left += 2 * scale + Ticks(yRange).Max(t => TinyFont.Width(Label(t), scale));
            bottom += 2 * scale + TinyFont.Height * scale;
        }
        int right = width - 1 - pad - scale - 2 * TinyFont.GlyphWidth * scale; // room for half a label at the end
        int top = pad + scale + TinyFont.Height * scale / 2;
        if (right - left < 2 || height - 1 - bottom - top < 2)
            throw new ArgumentException($"a {width}x{height} image is too small for a plot with axes");
        return new PlotFrame(left, top, right, height - 1 - bottom, xRange, yRange);
    }

    private static int Scale(int width, int height) => Math.Max(1, Math.Min(width, height) / 256);

    /// <summary>Round values (1, 2 or 5 × 10ⁿ apart) inside the range, about five of them.</summary>
    public static float[] Ticks((float Min, float Max) range)
    {
        double raw = ((double)range.Max - range.Min) / 5;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1.0, 2.0, 5.0, 10.0 }.Select(m => m * magnitude).First(s => s >= raw);
        var ticks = new List<float>();
        for (double v = Math.Ceiling(range.Min / step) * step; v <= range.Max + step * 1e-9; v += step)
            ticks.Add((float)(Math.Abs(v) < step * 1e-9 ? 0 : v));
        return [.. ticks];
    }

    private static string Label(float value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    private readonly struct Canvas(RgbImage image)
    {
        public void FillRect(int x0, int y0, int x1, int y1, Rgb color)
        {
            for (int y = Math.Max(0, y0); y <= Math.Min(image.Height - 1, y1); y++)
                for (int x = Math.Max(0, x0); x <= Math.Min(image.Width - 1, x1); x++)
                    image.SetPixel(x, y, color);
        }

        public void FillDisc(int cx, int cy, int radius, Rgb color, float opacity)
        {
            int limit = radius * radius + radius; // rounder small discs than r²
            for (int dy = -radius; dy <= radius; dy++)
            {
                for (int dx = -radius; dx <= radius; dx++)
                {
                    int x = cx + dx, y = cy + dy;
                    if (dx * dx + dy * dy > limit || (uint)x >= (uint)image.Width || (uint)y >= (uint)image.Height) continue;
                    Blend(x, y, color, opacity);
                }
            }
        }

        private void Blend(int x, int y, Rgb color, float opacity)
        {
            if (opacity >= 1f)
            {
                image.SetPixel(x, y, color);
                return;
            }
            var old = image.GetPixel(x, y);
            static byte Mix(byte a, byte b, float t) => (byte)MathF.Round(a + (b - a) * t);
            image.SetPixel(x, y, new Rgb(Mix(old.R, color.R, opacity), Mix(old.G, color.G, opacity), Mix(old.B, color.B, opacity)));
        }

        public void DrawText(string text, int x, int y, int scale, Rgb color)
        {
            foreach (var c in text)
            {
                var rows = TinyFont.Glyph(c);
                for (int row = 0; row < TinyFont.Height; row++)
                    for (int col = 0; col < TinyFont.GlyphWidth; col++)
                        if ((rows[row] >> (TinyFont.GlyphWidth - 1 - col) & 1) != 0)
                            FillRect(x + col * scale, y + row * scale, x + (col + 1) * scale - 1, y + (row + 1) * scale - 1, color);
                x += (TinyFont.GlyphWidth + 1) * scale;
            }
        }
    }
}

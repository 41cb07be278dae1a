using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public class ImageScatterPlotTests
{
    private static readonly (float, float) Range = (-2f, 2f);

    [Fact]
    public void PointLandsOnItsPixel()
    {
        var style = new ScatterPlotStyle { PointRadius = 0 };
        var frame = ScatterPlot.Layout(256, 256, Range, Range, style);
        var image = ScatterPlot.Render([(0.5f, -1f)], 256, 256, Range, Range, style);
        var (x, y) = frame.ToPixel(0.5f, -1f)!.Value;
        Assert.Equal(new Rgb(31, 119, 180), image.GetPixel(x, y));
        // 0.5 is 5/8 of the way across, −1 a quarter of the way up.
        Assert.Equal(frame.Left + (frame.Right - frame.Left) * 5 / 8.0, x, 0.51);
        Assert.Equal(frame.Bottom - (frame.Bottom - frame.Top) / 4.0, y, 0.51);
        Assert.NotEqual(new Rgb(31, 119, 180), image.GetPixel(x + 1, y));
    }

    [Fact]
    public void RangeEndsFallOnTheFrameCorners()
    {
        var frame = ScatterPlot.Layout(300, 200, (0f, 1f), (10f, 20f));
        Assert.Equal((frame.Left, frame.Bottom), frame.ToPixel(0f, 10f));
        Assert.Equal((frame.Right, frame.Top), frame.ToPixel(1f, 20f));
        Assert.Null(frame.ToPixel(1.01f, 15f));
        Assert.Null(frame.ToPixel(float.NaN, 15f));
        Assert.True(frame.Left > 0 && frame.Top > 0 && frame.Right < 299 && frame.Bottom < 199);
    }

    [Fact]
    public void SeriesKeepTheirColoursAndOutsidePointsAreDropped()
    {
        var red = new Rgb(255, 0, 0);
        var style = new ScatterPlotStyle { PointRadius = 1, ShowTickLabels = false };
        var frame = ScatterPlot.Layout(128, 128, Range, Range, style);
        var image = ScatterPlot.Render([new ScatterSeries([(1f, 1f)], red), new ScatterSeries([(-1f, -1f), (5f, 5f)], Rgb.Black)],
            128, 128, Range, Range, style);
        var (rx, ry) = frame.ToPixel(1f, 1f)!.Value;
        Assert.Equal(red, image.GetPixel(rx, ry));
        Assert.Equal(red, image.GetPixel(rx + 1, ry));
        var (bx, by) = frame.ToPixel(-1f, -1f)!.Value;
        Assert.Equal(Rgb.Black, image.GetPixel(bx, by - 1));
        // Inside the frame nothing else is black or red: the point at (5, 5) was dropped.
        int marked = 0;
        for (int y = frame.Top; y <= frame.Bottom; y++)
            for (int x = frame.Left; x <= frame.Right; x++)
                if (image.GetPixel(x, y) == Rgb.Black || image.GetPixel(x, y) == red) marked++;
        Assert.Equal(2 * 9, marked);
    }

    [Fact]
    public void DrawsAFrameAroundThePlot()
    {
        var style = new ScatterPlotStyle();
        var frame = ScatterPlot.Layout(200, 200, Range, Range);
        var image = ScatterPlot.Render(Array.Empty<(float, float)>(), 200, 200, Range, Range);
        Assert.Equal(style.AxisColor, image.GetPixel(frame.Left - 1, (frame.Top + frame.Bottom) / 2));
        Assert.Equal(style.AxisColor, image.GetPixel((frame.Left + frame.Right) / 2, frame.Bottom + 1));
        Assert.Equal(style.Background, image.GetPixel(1, 1));
    }

    [Fact]
    public void TicksAreRoundNumbers()
    {
        Assert.Equal([-2f, -1f, 0f, 1f, 2f], ScatterPlot.Ticks((-2f, 2f)));
        Assert.Equal([0f, 0.2f, 0.4f, 0.6f, 0.8f, 1f], ScatterPlot.Ticks((0f, 1f)));
        Assert.Equal([-10f, 0f, 10f, 20f], ScatterPlot.Ticks((-13f, 22f)));
    }

    [Fact]
    public void RefusesEmptyRangesAndTinyImages()
    {
        Assert.Throws<ArgumentException>(() => ScatterPlot.Layout(100, 100, (1f, 1f), Range));
        Assert.Throws<ArgumentException>(() => ScatterPlot.Layout(10, 10, Range, Range));
    }
}

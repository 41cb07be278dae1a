using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

// Each format the decoder reads, from files written by hand or by Pillow (tests/fixtures/pipeline/images).
public class ImageFormatTests
{
    [Fact]
    public void DecodesTheFirstFrameOfAGif()
    {
        (byte, byte, byte)[] palette = [.. Enumerable.Range(0, 16).Select(i => ((byte)(i * 16), (byte)(255 - i * 15), (byte)(i * 7 + 3)))];
        var indices = Enumerable.Range(0, 23 * 19).Select(i => (byte)(i * 7 % 16)).ToArray();
        var image = ImageDecoder.Decode(GifTestFile.Write(23, 19, indices, palette), "pattern.gif");
        Assert.Equal((23, 19, 3), (image.Width, image.Height, image.Channels));
        Assert.Equal(indices.SelectMany(i => new[] { palette[i].Item1, palette[i].Item2, palette[i].Item3 }), image.Pixels);
        Assert.Equal(new ImageInfo(23, 19, 3), ImageDecoder.ReadInfo(GifTestFile.Write(23, 19, indices, palette)));
    }

    [Fact]
    public void DecodesALosslessWebpWithAndWithoutAlpha()
    {
        var rgba = PngTestFiles.Pattern(9, 7, 4, seed: 3);
        var webp = WebpTestFile.Write(9, 7, rgba);
        Assert.Equal(rgba, ImageDecoder.Decode(webp, "pattern.webp", keepAlpha: true).Pixels);
        var rgb = ImageDecoder.Decode(webp, "pattern.webp");
        Assert.Equal(rgba.Where((_, i) => i % 4 != 3), rgb.Pixels);
        Assert.Equal(new ImageInfo(9, 7, 4), ImageDecoder.ReadInfo(webp));
    }

    [Fact]
    public void SixteenBitGrayAlphaPngKeepsItsAlpha()
    {
        // 2 × 1 gray + alpha, 16 bits per sample.
        byte[] scanlines = [0, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x00];
        var image = ImageDecoder.Decode(PngTestFiles.HandMadePng(2, 1, 16, 4, scanlines), "la16.png", keepAlpha: true);
        Assert.Equal(new byte[] { 0, 0, 0, 255, 255, 255, 255, 128 }, image.Pixels);
        Assert.Equal(2, ImageDecoder.ReadInfo(PngTestFiles.HandMadePng(2, 1, 16, 4, scanlines)).Channels);
    }

    [Fact]
    public void PalettePngWithTransparencyExpandsToRgba()
    {
        // 4 × 2, 4 bits per index, three palette entries of which the second is half transparent (tRNS).
        byte[] plte = [255, 0, 0, 0, 255, 0, 10, 20, 30];
        byte[] scanlines = [0, 0x01, 0x20, 0, 0x21, 0x10];
        var png = PngTestFiles.HandMadePng(4, 2, 4, 3, scanlines, ("PLTE", plte), ("tRNS", [255, 128]));
        var image = ImageDecoder.Decode(png, "palette.png", keepAlpha: true);
        byte[] red = [255, 0, 0, 255], green = [0, 255, 0, 128], blue = [10, 20, 30, 255];
        Assert.Equal([.. red, .. green, .. blue, .. red, .. blue, .. green, .. green, .. red], image.Pixels);
        Assert.Equal(new byte[] { 255, 0, 0, 0, 255, 0 }, ImageDecoder.Decode(png, "palette.png").Pixels[..6]);
    }

    [Theory]
    [InlineData(1, 32, 24)]
    [InlineData(2, 32, 24)]
    [InlineData(3, 32, 24)]
    [InlineData(4, 32, 24)]
    [InlineData(5, 24, 32)]
    [InlineData(6, 24, 32)]
    [InlineData(7, 24, 32)]
    [InlineData(8, 24, 32)]
    public void JpegIsTurnedUprightByItsExifOrientation(int orientation, int width, int height)
    {
        var bytes = File.ReadAllBytes(PngTestFiles.Fixture("gradient.jpg"));
        var stored = ImageDecoder.Decode(bytes, "gradient.jpg");
        var upright = ImageDecoder.Decode(ExifTestFile.WithOrientation(bytes, orientation), "exif.jpg");
        Assert.Equal((width, height), (upright.Width, upright.Height));
        Assert.Equal(new ImageInfo(width, height, 3), ImageDecoder.ReadInfo(ExifTestFile.WithOrientation(bytes, orientation)));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (sx, sy) = StoredPixel(orientation, x, y, stored.Width, stored.Height);
                Assert.Equal(stored.GetPixel(sx, sy), upright.GetPixel(x, y));
            }
    }

    [Fact]
    public void OrientationSixShowsTheLeftColumnAsTheTopRow()
    {
        // gradient is (8x, 10y, 128), 32 × 24. Turned 90° clockwise, its bottom-left corner is the new
        // top-left. A JPEG pixel differs from its source by a few levels (quality 95, chroma subsampled),
        // most at the corners, and by a level or two between decoders; hence a tolerance of 10.
        var bytes = ExifTestFile.WithOrientation(File.ReadAllBytes(PngTestFiles.Fixture("gradient.jpg")), 6);
        var image = ImageDecoder.Decode(bytes, "exif.jpg");
        AssertNear(new Rgb(0, 230, 128), image.GetPixel(0, 0));
        AssertNear(new Rgb(0, 0, 128), image.GetPixel(23, 0));
        AssertNear(new Rgb(248, 230, 128), image.GetPixel(0, 31));
    }

    // Where each EXIF orientation takes upright pixel (x, y) from, written out independently of the decoder.
    private static (int X, int Y) StoredPixel(int orientation, int x, int y, int w, int h) => orientation switch
    {
        1 => (x, y),
        2 => (w - 1 - x, y),
        3 => (w - 1 - x, h - 1 - y),
        4 => (x, h - 1 - y),
        5 => (y, x),
        6 => (y, h - 1 - x),
        7 => (w - 1 - y, h - 1 - x),
        _ => (w - 1 - y, x),
    };

    private static void AssertNear(Rgb expected, Rgb actual)
    {
        Assert.True(Math.Abs(expected.R - actual.R) <= 10 && Math.Abs(expected.G - actual.G) <= 10 && Math.Abs(expected.B - actual.B) <= 10,
            $"expected about {expected}, got {actual}");
    }
}

using System.Buffers.Binary;
using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public class ImageDecoderTests
{
    [Fact]
    public void DecodesABmpWrittenByHand()
    {
        var rgb = PngTestFiles.Pattern(5, 3, 3);
        using var folder = new TempFolder();
        var path = folder.File("pattern.bmp");
        File.WriteAllBytes(path, PngTestFiles.Bmp(5, 3, rgb));
        var image = ImageDecoder.Load(path);
        Assert.Equal((5, 3, 3), (image.Width, image.Height, image.Channels));
        Assert.Equal(rgb, image.Pixels);
        Assert.Equal(new ImageInfo(5, 3, 3), ImageDecoder.ReadInfo(path));
    }

    [Fact]
    public void SixteenBitPngKeepsTheHighByte()
    {
        // 2 × 1 RGB, 16 bits per sample: filter byte, then big-endian samples.
        byte[] scanlines = [0, 0x12, 0x34, 0xFF, 0xFF, 0x00, 0x01, 0x80, 0x00, 0x7F, 0xFF, 0xAB, 0xCD];
        var image = ImageDecoder.Decode(PngTestFiles.HandMadePng(2, 1, 16, 2, scanlines), "deep.png");
        Assert.Equal(new byte[] { 0x12, 0xFF, 0x00, 0x80, 0x7F, 0xAB }, image.Pixels);
    }

    [Fact]
    public void GrayscaleBecomesRgbAndGetsOpaqueAlphaWhenAsked()
    {
        var png = PngTestFiles.HandMadePng(3, 1, 8, 0, [0, 10, 128, 250]);
        Assert.Equal(new byte[] { 10, 10, 10, 128, 128, 128, 250, 250, 250 }, ImageDecoder.Decode(png).Pixels);
        var rgba = ImageDecoder.Decode(png, keepAlpha: true);
        Assert.Equal(new byte[] { 10, 10, 10, 255, 128, 128, 128, 255, 250, 250, 250, 255 }, rgba.Pixels);
    }

    [Fact]
    public void AlphaIsDroppedUnlessKept()
    {
        var png = PngTestFiles.HandMadePng(1, 1, 8, 6, [0, 1, 2, 3, 4]);
        Assert.Equal(new byte[] { 1, 2, 3 }, ImageDecoder.Decode(png).Pixels);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, ImageDecoder.Decode(png, keepAlpha: true).Pixels);
        Assert.Equal(4, ImageDecoder.ReadInfo(png).Channels);
    }

    [Fact]
    public void DecodesPillowsPaletteAndGrayAlphaPngs()
    {
        var palette = ImageDecoder.Load(PngTestFiles.Fixture("palette.png"));
        Assert.Equal((17, 13, 3), (palette.Width, palette.Height, palette.Channels));
        var la = ImageDecoder.Load(PngTestFiles.Fixture("gray_alpha.png"), keepAlpha: true);
        Assert.Equal(new Rgb(120, 120, 120), la.GetPixel(2, 1));
        Assert.Equal(155, la.GetAlpha(2, 1));
    }

    [Fact]
    public void DecodesJpeg()
    {
        var jpeg = ImageDecoder.Load(PngTestFiles.Fixture("gradient.jpg"));
        var png = ImageDecoder.Load(PngTestFiles.Fixture("gradient.png"));
        Assert.Equal((32, 24), (jpeg.Width, jpeg.Height));
        double meanError = jpeg.Pixels.Zip(png.Pixels, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(meanError < 3, $"mean absolute error {meanError}");
    }

    [Fact]
    public void MissingFileNamesTheFile()
    {
        using var folder = new TempFolder();
        var path = folder.File("photo.png");
        AssertOneLine($"{path}: file not found", Assert.Throws<ImageLoadException>(() => ImageDecoder.Load(path)));
        AssertOneLine($"{folder.Path}: is a directory, not an image file", Assert.Throws<ImageLoadException>(() => ImageDecoder.Load(folder.Path)));
    }

    [Fact]
    public void EmptyFileIsRefused()
    {
        using var folder = new TempFolder();
        var path = folder.File("empty.png");
        File.WriteAllBytes(path, []);
        AssertOneLine($"{path}: empty file, not an image", Assert.Throws<ImageLoadException>(() => ImageDecoder.Load(path)));
    }

    [Fact]
    public void TextFileIsNotAnImage()
    {
        using var folder = new TempFolder();
        var path = folder.File("notes.png");
        File.WriteAllText(path, "this is not an image\n");
        var e = Assert.Throws<ImageLoadException>(() => ImageDecoder.Load(path));
        AssertOneLine($"{path}: not an image (not PNG, JPEG, WebP, BMP or GIF)", e);
    }

    [Fact]
    public void TruncatedPngIsCorrupt()
    {
        var png = PngEncoder.Encode(new RgbImage(40, 30, PngTestFiles.Pattern(40, 30, 3)));
        AssertOneLine("half.png: truncated PNG image (the file ends before the image does)",
            Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(png[..(png.Length / 2)], "half.png")));
    }

    [Fact]
    public void HeaderOnlyPngIsCorrupt()
    {
        byte[] png = [.. PngTestFiles.Signature, .. PngTestFiles.ChunkBytes("IHDR", PngTestFiles.Header(4, 4, 8, 2))];
        AssertOneLine("header.png: truncated PNG image (the file ends before the image does)",
            Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(png, "header.png")));
    }

    [Fact]
    public void ZeroSizedPngIsRefused()
    {
        var png = PngTestFiles.HandMadePng(0, 1, 8, 2, [0]);
        AssertOneLine("zero.png: image has zero size (0x1)", Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(png, "zero.png")));
    }

    [Fact]
    public void ImageOverThePixelLimitIsRefusedBeforeDecoding()
    {
        // A header claiming 9000 × 9000 (81 megapixels) and no pixel data at all: the limit must
        // be checked before Skia tries to decode (which would report the data as truncated).
        byte[] claim = [.. PngTestFiles.Signature, .. PngTestFiles.ChunkBytes("IHDR", PngTestFiles.Header(9000, 9000, 8, 2))];
        AssertOneLine("huge.png: image is 9000x9000 (81 megapixels), over the limit of 64 megapixels",
            Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(claim, "huge.png")));

        var small = PngEncoder.Encode(new RgbImage(20, 20, new byte[1200]));
        AssertOneLine("small.png: image is 20x20 (400 pixels), over the limit of 399 pixels",
            Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(small, "small.png", maxPixels: 399)));
        Assert.Equal(400, ImageDecoder.Decode(small, "small.png", maxPixels: 400).PixelCount);
    }

    [Fact]
    public void AbsurdDimensionsAreRefused()
    {
        // The limit applies with the real size, whatever the decoder's own limits are.
        byte[] claim = [.. PngTestFiles.Signature, .. PngTestFiles.ChunkBytes("IHDR", PngTestFiles.Header(100000, 100000, 8, 2))];
        AssertOneLine("bomb.png: image is 100000x100000 (10000 megapixels), over the limit of 64 megapixels",
            Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(claim, "bomb.png")));
        Assert.Equal(new ImageInfo(100000, 100000, 3), ImageDecoder.ReadInfo(claim));
        AssertOneLine("bomb.png: image is 100000x100000, too large to hold in memory",
            Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(claim, "bomb.png", maxPixels: long.MaxValue)));

        byte[] wide = [.. PngTestFiles.Signature, .. PngTestFiles.ChunkBytes("IHDR", PngTestFiles.Header(20000, 20000, 8, 2))];
        // Within every limit, the missing pixel data is what is wrong; nothing was allocated for it.
        AssertOneLine("wide.png: truncated PNG image (the file ends before the image does)",
            Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(wide, "wide.png", maxPixels: long.MaxValue)));
    }

    [Fact]
    public void ReadInfoDoesNotDecode()
    {
        byte[] claim = [.. PngTestFiles.Signature, .. PngTestFiles.ChunkBytes("IHDR", PngTestFiles.Header(9000, 7000, 8, 6))];
        Assert.Equal(new ImageInfo(9000, 7000, 4), ImageDecoder.ReadInfo(claim));
        Assert.Equal(63_000_000, ImageDecoder.ReadInfo(claim).PixelCount);
    }

    private static void AssertOneLine(string expected, ImageLoadException e)
    {
        Assert.Equal(expected, e.Message);
        AssertSingleLine(e.Message, e);
    }

    private static void AssertSingleLine(string message, Exception e)
    {
        Assert.DoesNotContain('\n', message);
        Assert.IsType<ImageLoadException>(e);
    }
}

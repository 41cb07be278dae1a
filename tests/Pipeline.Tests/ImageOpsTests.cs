using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public class ImageOpsTests
{
    private static RgbImage Fixture(string name, bool alpha = false) => ImageDecoder.Load(PngTestFiles.Fixture(name), keepAlpha: alpha);

    [Theory]
    [InlineData(ResizeFilter.Nearest, "nearest")]
    [InlineData(ResizeFilter.Box, "box")]
    [InlineData(ResizeFilter.Bilinear, "bilinear")]
    [InlineData(ResizeFilter.Bicubic, "bicubic")]
    [InlineData(ResizeFilter.Lanczos, "lanczos")]
    public void ResizeMatchesPillowByteForByte(ResizeFilter filter, string name)
    {
        var source = Fixture("source.png");
        foreach (var (w, h) in new[] { (7, 5), (40, 29), (17, 6) })
        {
            var expected = Fixture($"resize_{name}_{w}x{h}.png");
            var actual = source.Resize(w, h, filter);
            Assert.Equal((w, h), (actual.Width, actual.Height));
            Assert.Equal(expected.Pixels, actual.Pixels);
        }
    }

    [Fact]
    public void RgbaResizeMatchesPillowsPremultipliedPath()
    {
        var source = Fixture("source_rgba.png", alpha: true);
        foreach (var (w, h) in new[] { (7, 5), (40, 29) })
            Assert.Equal(Fixture($"resize_rgba_lanczos_{w}x{h}.png", alpha: true).Pixels, source.Resize(w, h).Pixels);
    }

    [Fact]
    public void ResizeToTheSameSizeCopies()
    {
        var source = Fixture("source.png");
        var same = source.Resize(source.Width, source.Height);
        Assert.NotSame(source.Pixels, same.Pixels);
        Assert.Equal(source.Pixels, same.Pixels);
    }

    [Fact]
    public void CenterCropUsesTorchvisionOffsets()
    {
        var image = Numbered(5, 4);
        var crop = image.CenterCrop(2, 2);
        // left = round((5 − 2) / 2) = round(1.5) = 2 (half to even), top = round(1) = 1
        Assert.Equal(ColumnRow(2, 1), crop.GetPixel(0, 0));
        Assert.Equal(ColumnRow(3, 2), crop.GetPixel(1, 1));
        Assert.Throws<ArgumentException>(() => image.CenterCrop(6, 1));
    }

    [Fact]
    public void CropToAspectKeepsTheLargestCentredRegion()
    {
        var wide = Numbered(10, 4);
        var square = wide.CropToAspect(1, 1);
        Assert.Equal((4, 4), (square.Width, square.Height));
        Assert.Equal(ColumnRow(3, 0), square.GetPixel(0, 0));
        var tall = Numbered(4, 10).CropToAspect(2, 1);
        Assert.Equal((4, 2), (tall.Width, tall.Height));
        Assert.Equal(ColumnRow(0, 4), tall.GetPixel(0, 0));
    }

    [Fact]
    public void ResizeAndCropCoversTheTargetLikeAutomatic1111()
    {
        var wide = RgbImage.Filled(40, 20, Rgb.White);
        var result = wide.ResizeAndCrop(16, 16);
        Assert.Equal((16, 16), (result.Width, result.Height));
        Assert.All(Enumerable.Range(0, 16 * 16), i => Assert.Equal(Rgb.White, result.GetPixel(i % 16, i / 16)));

        // A marker left of centre moves with the scaled image: 40 × 20 → 32 × 16, offset 8 − 16 = −8.
        var marked = RgbImage.Filled(40, 20, Rgb.Black);
        for (int y = 0; y < 20; y++) for (int x = 20; x < 30; x++) marked.SetPixel(x, y, Rgb.White);
        var shifted = marked.ResizeAndCrop(16, 16, ResizeFilter.Nearest);
        Assert.Equal(Rgb.Black, shifted.GetPixel(7, 8));
        Assert.Equal(Rgb.White, shifted.GetPixel(8, 8));
        Assert.Equal(Rgb.White, shifted.GetPixel(15, 8));
    }

    [Fact]
    public void ResizeToFitScalesByTheSmallerRatioRoundingHalfToEven()
    {
        // 10 × 4 into 5 × 5: k = min(5/4, 5/10) = 0.5 → 5 × 2
        var wide = Numbered(10, 4).ResizeToFit(5, 5);
        Assert.Equal((5, 2), (wide.Width, wide.Height));
        Assert.Equal(Numbered(10, 4).Resize(5, 2).Pixels, wide.Pixels);
        // 4 × 5 into 2 × 100: k = 0.5 → 2 × round(2.5) = 2 × 2 (numpy rounds half to even)
        var half = Numbered(4, 5).ResizeToFit(2, 100);
        Assert.Equal((2, 2), (half.Width, half.Height));
        // already fitting one side exactly and smaller on the other: the image itself
        var exact = Numbered(5, 3);
        Assert.Same(exact, exact.ResizeToFit(5, 9));
    }

    [Fact]
    public void FillToCentresTheImageOnTheMedianOfItsBorderAsTheControlNetExtension()
    {
        // Numbered(5, 3)'s border (rows 0 and 2, columns 0 and 4; corners twice): 16 values per channel.
        // R: 0×5, 1×2, 2×2, 3×2, 4×5 → the 8th and 9th sorted are 2 and 2 → 2; G: 0×7, 1×2, 2×7 → 1 and 1 → 1.
        var image = Numbered(5, 3);
        var filled = image.FillTo(7, 6);
        Assert.Equal((7, 6), (filled.Width, filled.Height));
        var fill = new Rgb(2, 1, 0);
        Assert.Equal(fill, filled.GetPixel(0, 0));
        Assert.Equal(fill, filled.GetPixel(6, 5));
        Assert.Equal(fill, filled.GetPixel(6, 1));
        Assert.Equal(fill, filled.GetPixel(1, 4));
        // pad = (7 − 5) // 2 = 1 across, (6 − 3) // 2 = 1 down
        for (int y = 0; y < 3; y++) for (int x = 0; x < 5; x++) Assert.Equal(ColumnRow(x, y), filled.GetPixel(x + 1, y + 1));
        Assert.Throws<ArgumentException>(() => image.FillTo(4, 6));

        // an even split between two values: numpy's median is their mean, 127.5 and 10.5, and astype(uint8) truncates
        var halves = new RgbImage(2, 2, [0, 10, 0, 0, 10, 0, 255, 11, 0, 255, 11, 0]);
        Assert.Equal(new Rgb(127, 10, 0), halves.FillTo(4, 4).GetPixel(0, 0));
    }

    [Fact]
    public void ResizeToMultipleOfEightFloorsBothSides()
    {
        var image = Fixture("source.png"); // 17 × 13
        var snapped = image.ResizeToMultipleOf(8);
        Assert.Equal((16, 8), (snapped.Width, snapped.Height));
        Assert.Equal(image.Resize(16, 8).Pixels, snapped.Pixels);
        var exact = RgbImage.Filled(16, 24, Rgb.Black);
        Assert.Same(exact, exact.ResizeToMultipleOf(8));
        Assert.Throws<ArgumentException>(() => RgbImage.Filled(7, 30, Rgb.Black).ResizeToMultipleOf(8));
    }

    [Fact]
    public void GridPlacesImagesRowByRow()
    {
        var colors = Enumerable.Range(0, 5).Select(i => new Rgb((byte)(40 * i + 10), 0, 0)).ToArray();
        var images = colors.Select(c => RgbImage.Filled(3, 2, c)).ToList();
        var grid = ImageGrid.Compose(images, columns: 3, spacing: 1, background: Rgb.White);
        Assert.Equal((3 * 3 + 4, 2 * 2 + 3), (grid.Width, grid.Height));
        for (int i = 0; i < 5; i++)
        {
            int x = 1 + i % 3 * 4, y = 1 + i / 3 * 3;
            Assert.Equal(colors[i], grid.GetPixel(x, y));
            Assert.Equal(colors[i], grid.GetPixel(x + 2, y + 1));
        }
        Assert.Equal(Rgb.White, grid.GetPixel(0, 0));
        Assert.Equal(Rgb.White, grid.GetPixel(4, 1));
        Assert.Equal(Rgb.White, grid.GetPixel(9, 4)); // the empty sixth cell
    }

    [Fact]
    public void GridDefaultsToASquareishLayoutAndSavesAsPng()
    {
        var images = Enumerable.Range(0, 4).Select(i => RgbImage.Filled(2, 2, new Rgb((byte)i, 0, 0))).ToList();
        var grid = ImageGrid.Compose(images);
        Assert.Equal((4, 4), (grid.Width, grid.Height));
        Assert.Equal(new Rgb(3, 0, 0), grid.GetPixel(3, 3));
        Assert.Equal(grid.Pixels, ImageDecoder.Decode(grid.EncodePng()).Pixels);
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose([RgbImage.Filled(2, 2, Rgb.Black), RgbImage.Filled(3, 2, Rgb.Black)]));
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose([]));
    }

    [Fact]
    public void PasteClipsAndCropCopies()
    {
        var canvas = RgbImage.Filled(4, 4, Rgb.Black);
        canvas.Paste(RgbImage.Filled(3, 3, Rgb.White), -1, 2);
        Assert.Equal(Rgb.White, canvas.GetPixel(0, 2));
        Assert.Equal(Rgb.White, canvas.GetPixel(1, 3));
        Assert.Equal(Rgb.Black, canvas.GetPixel(2, 2));
        Assert.Equal(Rgb.Black, canvas.GetPixel(0, 1));
        var crop = canvas.Crop(0, 2, 2, 2);
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(Rgb.White, crop.GetPixel(i % 2, i / 2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => canvas.Crop(3, 3, 2, 2));
    }

    private static Rgb ColumnRow(int x, int y) => new((byte)x, (byte)y, 0);

    private static RgbImage Numbered(int width, int height)
    {
        var image = RgbImage.Filled(width, height, Rgb.Black);
        for (int y = 0; y < height; y++) for (int x = 0; x < width; x++) image.SetPixel(x, y, ColumnRow(x, y));
        return image;
    }
}

using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

public sealed class InpaintMaskTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("mask_blur", 2)]
    [InlineData("mask_blur", 3)]
    [InlineData("mask_blur_random", 4)]
    [InlineData("mask_blur_random", 8)]
    public void MaskBlurMatchesOpenCvsGaussianBlurAsA1111AppliesIt(string name, int sigma)
    {
        var input = InpaintMask.ToGray(RgbImage.Load(SharedData.Fixture($"pipeline/images/{name}.png")));
        var expected = RgbImage.Load(SharedData.Fixture($"pipeline/images/{name}_sigma{sigma}.png")).ToLuma();
        var actual = InpaintMask.Blur(input, sigma).ToLuma();
        var differences = actual.Zip(expected, (a, e) => Math.Abs(a - e)).ToList();
        output.WriteLine($"σ {sigma}: max |Δ| {differences.Max()} level(s), {differences.Count(d => d > 0)} of {differences.Count} pixels differ");
        Assert.Equal(expected, actual); // bit-exact: OpenCV's fixed-point kernel and rounding
        Assert.Same(input, InpaintMask.Blur(input, 0));
    }

    [Fact]
    public void CropRegionPadsTheBoundingBoxAndWidensItToTheOutputsAspectRatio()
    {
        var mask = InpaintMask.ToGray(InpaintingTests.Rectangle(64, 64, 20, 30, 10, 4));
        // box x 20..30, y 30..34; padded by 4: x 16..34, y 26..38 (18 × 12); to 1:1 the height grows by 6: y 23..41
        Assert.Equal((16, 23, 34, 41), InpaintMask.CropRegion(mask, 64, 64, 4));
        // wide output (2:1): the width grows from 18 to 24, shifted back inside the image at the left edge
        var left = InpaintMask.ToGray(InpaintingTests.Rectangle(64, 64, 0, 30, 10, 4));
        Assert.Equal((0, 26, 24, 38), InpaintMask.CropRegion(left, 128, 64, 4));
        Assert.Throws<ArgumentException>(() => InpaintMask.CropRegion(InpaintMask.ToGray(RgbImage.Filled(8, 8, Rgb.Black)), 8, 8, 0));
    }

    [Fact]
    public void OverlayKeepsTheOriginalWhereTheMaskIsBlackAndMixesByTheGrayLevel()
    {
        var original = RgbImage.Filled(4, 1, new Rgb(200, 100, 0));
        var generated = RgbImage.Filled(4, 1, new Rgb(0, 100, 200));
        var mask = RgbImage.FromGray(4, 1, [0, 255, 128, 51]);
        var result = InpaintMask.Overlay(original, mask, generated);
        Assert.Equal(new Rgb(200, 100, 0), result.GetPixel(0, 0));
        Assert.Equal(new Rgb(0, 100, 200), result.GetPixel(1, 0));
        Assert.Equal(new Rgb(100, 100, 100), result.GetPixel(2, 0));
        Assert.Equal(new Rgb(160, 100, 40), result.GetPixel(3, 0));
    }

    [Fact]
    public void GrayscaleIsPilsConvertLAndEmptyMeansNothingReachesOneHalf()
    {
        var colour = RgbImage.Filled(1, 1, new Rgb(255, 0, 0));
        Assert.Equal(76, InpaintMask.ToGray(colour).GetPixel(0, 0).R); // 255 · 0.299
        Assert.True(InpaintMask.IsEmpty(RgbImage.FromGray(2, 1, [0, 127])));
        Assert.False(InpaintMask.IsEmpty(RgbImage.FromGray(2, 1, [0, 128])));
    }

    [Fact]
    public void OutpaintCanvasStretchesTheEdgesMasksTheNewAreaWithASeamAndRoundsToMultiplesOfEight()
    {
        var image = RgbImage.Filled(8, 8, new Rgb(10, 20, 30));
        image.SetPixel(0, 3, new Rgb(200, 0, 0));
        var (canvas, mask) = OutpaintCanvas.Extend(image, new CanvasExtension(Left: 4), maskBlur: 1);
        Assert.Equal((16, 8), (canvas.Width, canvas.Height)); // 12 wide rounded up by extending the left further
        Assert.Equal(new Rgb(200, 0, 0), canvas.GetPixel(0, 3)); // the edge pixel stretched outwards
        Assert.Equal(new Rgb(200, 0, 0), canvas.GetPixel(8, 3));
        Assert.Equal(new Rgb(10, 20, 30), canvas.GetPixel(0, 0));
        // white over the 8 new columns and a seam of 2 × blur into the image; black over the rest
        Assert.Equal(Enumerable.Repeat((byte)255, 10).Concat(Enumerable.Repeat((byte)0, 6)), Enumerable.Range(0, 16).Select(x => mask.GetPixel(x, 5).R));
        Assert.Throws<ArgumentException>(() => OutpaintCanvas.Extend(image, new CanvasExtension(), 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => OutpaintCanvas.Extend(image, new CanvasExtension(Top: -1, Bottom: 8), 0));
    }

    [Fact]
    public void MaskedContentFillMatchesA1111sFillWithPillow()
    {
        var image = RgbImage.Load(SharedData.Fixture("pipeline/images/masked_fill_image.png"));
        var mask = InpaintMask.ToGray(RgbImage.Load(SharedData.Fixture("pipeline/images/masked_fill_mask.png")));
        var expected = RgbImage.Load(SharedData.Fixture("pipeline/images/masked_fill_expected.png"));
        var actual = MaskedFill.Fill(image, mask);
        var differences = actual.Pixels.Zip(expected.Pixels, (a, e) => Math.Abs(a - e)).ToList();
        output.WriteLine($"fill: max |Δ| {differences.Max()} level(s), {differences.Count(d => d > 0)} of {differences.Count} values differ");
        Assert.Equal(expected.Pixels, actual.Pixels);
    }
}

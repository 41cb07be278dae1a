using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Preprocessors;
using LatentDiffusion.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// The Canny preprocessor against OpenCV 4.6's cv2.Canny(rgb, low, high) on two shrunk test photos (reference edge maps made
/// by tests/fixtures/pipeline/canny/make_canny_reference.py).
/// </summary>
public sealed class CannyDetectorTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("astronaut", 100, 200)]
    [InlineData("astronaut", 50, 120)]
    [InlineData("coffee", 100, 200)]
    [InlineData("coffee", 50, 120)]
    public void EdgesMatchOpenCvPixelForPixel(string photo, int low, int high)
    {
        var image = RgbImage.Load(SharedData.Fixture($"pipeline/canny/{photo}.png"));
        var expected = RgbImage.Load(SharedData.Fixture($"pipeline/canny/{photo}_canny_{low}_{high}.png"));
        var edges = CannyDetector.Detect(image, low, high);
        Assert.Equal((expected.Width, expected.Height), (edges.Width, edges.Height));
        int same = 0, total = edges.Width * edges.Height, edgePixels = 0;
        for (int i = 0; i < total; i++)
        {
            if (edges.Pixels[3 * i] == expected.Pixels[3 * i]) same++;
            if (expected.Pixels[3 * i] == 255) edgePixels++;
        }
        output.WriteLine($"canny {photo} {low}/{high}: {same} of {total} pixels identical to OpenCV ({100.0 * same / total:F2} %), {edgePixels} edge pixels");
        Assert.True(edgePixels > total / 50, "the reference has edges to compare");
        Assert.Equal(total, same);
    }

    [Fact]
    public void TheOptionalBlurIsOpenCvsGaussianBlurToWithinOneLevel()
    {
        var image = RgbImage.Load(SharedData.Fixture("pipeline/canny/coffee.png"));
        var expected = RgbImage.Load(SharedData.Fixture("pipeline/canny/coffee_blur_1.4.png"));
        var blurred = GaussianBlur.Apply(image, 1.4);
        Assert.Equal(9, GaussianBlur.Kernel(1.4).Length); // ⌊1.4 · 6 + 1⌉ | 1, OpenCV's width for 8-bit images
        var diffs = blurred.Pixels.Zip(expected.Pixels, (a, b) => Math.Abs(a - b)).ToList();
        output.WriteLine($"blur σ 1.4: {diffs.Count(d => d == 0)} of {diffs.Count} values identical to cv2.GaussianBlur ({100.0 * diffs.Count(d => d == 0) / diffs.Count:F2} %), max difference {diffs.Max()}");
        Assert.True(diffs.Max() <= 1);
        // blurring first removes fine texture: fewer edges
        Assert.True(CannyDetector.Detect(image, 50, 120, blurSigma: 1.4).Pixels.Count(b => b == 255)
            < CannyDetector.Detect(image, 50, 120).Pixels.Count(b => b == 255));
    }

    [Fact]
    public void ThresholdsBehaveAsOpenCvs()
    {
        var image = RgbImage.Load(SharedData.Fixture("pipeline/canny/coffee.png"));
        // swapped thresholds are put in order; higher thresholds keep a subset of the edges
        Assert.Equal(CannyDetector.Detect(image, 100, 200).Pixels, CannyDetector.Detect(image, 200, 100).Pixels);
        var loose = CannyDetector.Detect(image, 50, 120);
        var strict = CannyDetector.Detect(image, 100, 200);
        Assert.True(strict.Pixels.Zip(loose.Pixels).All(p => p.First <= p.Second));
        Assert.True(strict.Pixels.Count(b => b == 255) < loose.Pixels.Count(b => b == 255));
        // a flat image has no edges; the output is a 3-channel black-and-white map
        var flat = CannyDetector.Detect(RgbImage.Filled(20, 10, new Rgb(30, 200, 90)));
        Assert.All(flat.Pixels, b => Assert.Equal(0, b));
        Assert.Equal(3, flat.Channels);
        Assert.Throws<ArgumentOutOfRangeException>(() => CannyDetector.Detect(image, double.NaN, 200));
        Assert.Throws<ArgumentOutOfRangeException>(() => CannyDetector.Detect(image, 100, 200, blurSigma: -1));
    }
}

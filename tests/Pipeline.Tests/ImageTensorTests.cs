using LatentDiffusion.Tests.Common;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public class ImageTensorTests
{
    [Fact]
    public void ToTensorIsPlanarAndSignedLikeDiffusers()
    {
        // 2 × 1: pixel 0 = (0, 128, 255), pixel 1 = (255, 64, 1).
        var image = new RgbImage(2, 1, [0, 128, 255, 255, 64, 1]);
        using var tensor = image.ToTensor();
        Assert.Equal([1L, 3, 1, 2], tensor.Shape);
        Assert.Equal(DType.Float32, tensor.DType);
        // numpy: np.float32(v) / 255.0 → float32, then 2.0 * x - 1.0
        static float D(int v) => 2f * (v / 255f) - 1f;
        Assert.Equal([-1f, 1f, D(128), D(64), 1f, D(1)], tensor.ToArray<float>());
        Assert.Equal(0.003921628f, D(128));
    }

    [Fact]
    public void UnitTensorDividesBy255AndDropsAlpha()
    {
        var image = new RgbImage(1, 1, [51, 102, 255, 7], channels: 4);
        using var tensor = image.ToUnitTensor();
        Assert.Equal([1L, 3, 1, 1], tensor.Shape);
        Assert.Equal([51 / 255f, 102 / 255f, 1f], tensor.ToArray<float>());
    }

    [Fact]
    public void FromTensorClampsAndRoundsHalfToEvenLikeNumpy()
    {
        // x / 2 + 0.5 → 0.5 × 255 = 127.5 rounds to 128; 0.6 → 153; 0.25 × 255 = 63.75 → 64; outside [-1, 1] clamps.
        float[] values = [0f, 0.2f, -0.5f, -1f, 1f, 3f, -7f, 0.99f, -0.999f];
        using var tensor = Tensor.From(values, 1, 3, 1, 3);
        var image = Assert.Single(RgbImage.FromTensor(tensor));
        Assert.Equal((3, 1, 3), (image.Width, image.Height, image.Channels));
        // planar R = (0, 0.2, −0.5), G = (−1, 1, 3), B = (−7, 0.99, −0.999) → interleaved pixels
        Assert.Equal(new byte[] { 128, 0, 0, 153, 255, 254, 64, 255, 0 }, image.Pixels);
        Assert.Equal(254, Expected(0.99f));
    }

    // diffusers: ((x / 2 + 0.5).clamp(0, 1) * 255).round() in float32
    private static byte Expected(float x) => (byte)MathF.Round(Math.Clamp(x / 2 + 0.5f, 0f, 1f) * 255f, MidpointRounding.ToEven);

    [Fact]
    public void EveryByteSurvivesTheRoundTrip()
    {
        var pixels = Enumerable.Range(0, 256 * 3).Select(i => (byte)(i % 256)).ToArray();
        var image = new RgbImage(16, 16, pixels);
        using var tensor = image.ToTensor();
        Assert.Equal(pixels, RgbImage.FromTensor(tensor)[0].Pixels);
        using var unit = image.ToUnitTensor();
        Assert.Equal(pixels, RgbImage.FromUnitTensor(unit)[0].Pixels);
    }

    [Fact]
    public void BatchesGrayAlphaAndThreeDimensionalTensors()
    {
        using var batch = Tensor.From(new float[] { -1, -1, 1, 1, 1, 1 }, 2, 3, 1, 1);
        var images = RgbImage.FromTensor(batch);
        Assert.Equal(2, images.Length);
        Assert.Equal(new Rgb(0, 0, 255), images[0].GetPixel(0, 0));
        Assert.Equal(new Rgb(255, 255, 255), images[1].GetPixel(0, 0));

        using var gray = Tensor.From(new float[] { 0f, 1f }, 1, 1, 1, 2);
        var g = Assert.Single(RgbImage.FromUnitTensor(gray));
        Assert.Equal(new byte[] { 0, 0, 0, 255, 255, 255 }, g.Pixels);

        using var rgba = Tensor.From(new float[] { 1f, 0f, 0f, 0.5f }, 4, 1, 1);
        var a = Assert.Single(RgbImage.FromUnitTensor(rgba));
        Assert.Equal(new byte[] { 255, 0, 0, 128 }, a.Pixels);
    }

    [Fact]
    public void HalfPrecisionTensorsConvert()
    {
        using var f32 = Tensor.From(new float[] { -1f, 0f, 1f }, 1, 3, 1, 1);
        using var f16 = f32.To(DType.Float16);
        Assert.Equal(new byte[] { 0, 128, 255 }, RgbImage.FromTensor(f16)[0].Pixels);
    }

    [Fact]
    public void RejectsWrongShapesAndIntegerTensors()
    {
        using var twoChannels = Tensor.From(new float[2], 1, 2, 1, 1);
        Assert.Throws<ArgumentException>(() => RgbImage.FromTensor(twoChannels));
        using var bytes = Tensor.From(new byte[3], 1, 3, 1, 1);
        Assert.Throws<ArgumentException>(() => RgbImage.FromTensor(bytes));
    }
}

/// <summary>Counts live native tensors, a process-wide number: runs alone.</summary>
[Collection(LiveTensorCount.Name)]
public sealed class ImageTensorMemoryTests
{
    [Fact]
    public void ConversionFreesItsTemporaries()
    {
        using var tensor = Tensor.From(new float[3 * 8 * 8], 1, 3, 8, 8);
        RgbImage.FromTensor(tensor);
        long before = LiveTensorCount.Settled();
        for (int i = 0; i < 5; i++) RgbImage.FromTensor(tensor);
        Assert.Equal(before, Tensor.LiveCount);
    }
}

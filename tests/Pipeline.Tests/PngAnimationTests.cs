using System.Buffers.Binary;
using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public class PngAnimationTests
{
    private static RgbImage Frame(int seed, int channels = 3) => new(6, 4, PngTestFiles.Pattern(6, 4, channels, seed), channels);

    private static byte[] Encode(IReadOnlyList<ApngFrame> frames, int loops = 0)
    {
        using var memory = new MemoryStream();
        ApngEncoder.Encode(memory, frames, loops, [new PngText("parameters", "steps")]);
        return memory.ToArray();
    }

    [Fact]
    public void ChunksAreOrderedAndSequenceNumbersCountUpFromZero()
    {
        var frames = new[] { Frame(1), Frame(2), Frame(3) }.Select((f, i) => new ApngFrame(f, TimeSpan.FromMilliseconds(100 * (i + 1)))).ToList();
        var chunks = PngTestFiles.Chunks(Encode(frames, loops: 2));
        Assert.All(chunks, c => Assert.Equal(c.ComputedCrc, c.StoredCrc));
        Assert.Equal(["IHDR", "acTL", "tEXt", "fcTL", "IDAT", "fcTL", "fdAT", "fcTL", "fdAT", "IEND"], chunks.Select(c => c.Type));

        var actl = chunks[1].Data;
        Assert.Equal(3, BinaryPrimitives.ReadInt32BigEndian(actl));
        Assert.Equal(2, BinaryPrimitives.ReadInt32BigEndian(actl.AsSpan(4)));

        var sequenced = chunks.Where(c => c.Type is "fcTL" or "fdAT").Select(c => BinaryPrimitives.ReadInt32BigEndian(c.Data)).ToList();
        Assert.Equal([0, 1, 2, 3, 4], sequenced);

        var controls = chunks.Where(c => c.Type == "fcTL").Select(c => c.Data).ToList();
        for (int i = 0; i < 3; i++)
        {
            var f = controls[i];
            Assert.Equal(26, f.Length);
            Assert.Equal(6, BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(4)));
            Assert.Equal(4, BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(8)));
            Assert.Equal(0, BinaryPrimitives.ReadInt64BigEndian(f.AsSpan(12))); // x and y offsets
            Assert.Equal(100 * (i + 1), BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20)));
            Assert.Equal(1000, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(22)));
            Assert.Equal(0, f[24]);
            Assert.Equal(0, f[25]);
        }
    }

    [Fact]
    public void FrameDataHoldsEachFrameAndTheDefaultImageIsTheFirst()
    {
        var images = new[] { Frame(1), Frame(2), Frame(3) };
        var png = Encode(images.Select(f => new ApngFrame(f, TimeSpan.FromSeconds(0.5))).ToList());
        Assert.Equal(images[0].Pixels, ImageDecoder.Decode(png).Pixels);

        // Rebuild each later frame as a still PNG from its fdAT data, and decode that.
        var chunks = PngTestFiles.Chunks(png);
        var fdat = chunks.Where(c => c.Type == "fdAT").ToList();
        for (int i = 1; i < 3; i++)
        {
            var still = (byte[])[.. PngTestFiles.Signature, .. PngTestFiles.ChunkBytes("IHDR", chunks[0].Data),
                .. PngTestFiles.ChunkBytes("IDAT", fdat[i - 1].Data[4..]), .. PngTestFiles.ChunkBytes("IEND", [])];
            Assert.Equal(images[i].Pixels, ImageDecoder.Decode(still).Pixels);
        }
    }

    [Fact]
    public void LongFrameDataSpansSeveralNumberedChunks()
    {
        var noise = new byte[400 * 400 * 3];
        new Random(5).NextBytes(noise);
        var big = new RgbImage(400, 400, noise);
        var chunks = PngTestFiles.Chunks(Encode([new ApngFrame(big, TimeSpan.FromMilliseconds(40)), new ApngFrame(big, TimeSpan.FromMilliseconds(40))]));
        var types = chunks.Select(c => c.Type).ToList();
        Assert.True(types.Count(t => t == "fdAT") > 1);
        var sequenced = chunks.Where(c => c.Type is "fcTL" or "fdAT").Select(c => BinaryPrimitives.ReadInt32BigEndian(c.Data)).ToList();
        Assert.Equal(Enumerable.Range(0, sequenced.Count), sequenced);
    }

    [Fact]
    public void AnyAlphaFrameMakesTheAnimationRgba()
    {
        var png = Encode([new ApngFrame(Frame(1), TimeSpan.Zero), new ApngFrame(Frame(2, channels: 4), TimeSpan.Zero)]);
        Assert.Equal(6, PngTestFiles.Chunks(png)[0].Data[9]);
        Assert.Equal(Frame(1).ToRgba().Pixels, ImageDecoder.Decode(png, keepAlpha: true).Pixels);
    }

    [Theory]
    [InlineData(0, 0, 1000)]
    [InlineData(40, 40, 1000)]
    [InlineData(65535, 65535, 1000)]
    [InlineData(65540, 6554, 100)]
    [InlineData(1_000_000, 1000, 1)]
    public void DelaysBecomeSixteenBitFractions(double milliseconds, int numerator, int denominator)
    {
        Assert.Equal(((ushort)numerator, (ushort)denominator), ApngEncoder.DelayFraction(TimeSpan.FromMilliseconds(milliseconds)));
    }

    [Fact]
    public void RefusesMismatchedOrNoFrames()
    {
        Assert.Throws<ArgumentException>(() => Encode([]));
        var small = new RgbImage(2, 2, new byte[12]);
        Assert.Throws<ArgumentException>(() => Encode([new ApngFrame(Frame(1), TimeSpan.Zero), new ApngFrame(small, TimeSpan.Zero)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Encode([new ApngFrame(Frame(1), TimeSpan.FromSeconds(-1))]));
    }

    [Fact]
    public void SaveWritesAtomically()
    {
        using var folder = new TempFolder();
        var path = folder.File("steps.png");
        ApngEncoder.Save(path, [Frame(1), Frame(2)], TimeSpan.FromMilliseconds(200));
        Assert.Equal(["steps.png"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
        Assert.Equal(Frame(1).Pixels, RgbImage.Load(path).Pixels);
    }
}

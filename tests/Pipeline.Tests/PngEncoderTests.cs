using System.Buffers.Binary;
using System.Text;
using LatentDiffusion.Pipeline.Imaging;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public class PngEncoderTests
{
    [Theory]
    [InlineData(1, 1, 3)]
    [InlineData(3, 7, 3)]
    [InlineData(64, 48, 3)]
    [InlineData(1, 1, 4)]
    [InlineData(7, 3, 4)]
    [InlineData(33, 17, 4)]
    public void RoundTripsThroughSkiaBitExactly(int width, int height, int channels)
    {
        var image = new RgbImage(width, height, PngTestFiles.Pattern(width, height, channels), channels);
        var decoded = ImageDecoder.Decode(PngEncoder.Encode(image), "test.png", keepAlpha: channels == 4);
        Assert.Equal((width, height, channels), (decoded.Width, decoded.Height, decoded.Channels));
        Assert.Equal(image.Pixels, decoded.Pixels);
    }

    [Theory]
    [InlineData(PngFilter.None)]
    [InlineData(PngFilter.Sub)]
    [InlineData(PngFilter.Up)]
    [InlineData(PngFilter.Average)]
    [InlineData(PngFilter.Paeth)]
    [InlineData(PngFilter.Adaptive)]
    public void EveryFilterDecodesToTheSamePixels(PngFilter filter)
    {
        var image = new RgbImage(29, 11, PngTestFiles.Pattern(29, 11, 3, seed: 7));
        var png = PngEncoder.Encode(image, options: new PngEncoderOptions { Filter = filter });
        Assert.Equal(image.Pixels, ImageDecoder.Decode(png).Pixels);
        var filterBytes = Inflate(PngTestFiles.Chunks(png).Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray())
            .Where((_, i) => i % (29 * 3 + 1) == 0).ToArray();
        if (filter != PngFilter.Adaptive) Assert.All(filterBytes, b => Assert.Equal((byte)filter, b));
    }

    [Fact]
    public void AdaptiveFilteringShrinksASmoothImage()
    {
        var pixels = new byte[256 * 256 * 3];
        for (int y = 0; y < 256; y++)
            for (int x = 0; x < 256; x++)
                for (int c = 0; c < 3; c++) pixels[(y * 256 + x) * 3 + c] = (byte)(x * (c + 1) + y * 2);
        var image = new RgbImage(256, 256, pixels);
        var none = PngEncoder.Encode(image, options: new PngEncoderOptions { Filter = PngFilter.None });
        var adaptive = PngEncoder.Encode(image);
        Assert.True(adaptive.Length * 2 < none.Length, $"adaptive {adaptive.Length} bytes vs none {none.Length}");
    }

    [Fact]
    public void GrayscaleRawRoundTripsAsRgb()
    {
        var gray = PngTestFiles.Pattern(5, 9, 1);
        using var memory = new MemoryStream();
        PngEncoder.EncodeRaw(memory, 5, 9, PngColorType.Gray, gray);
        var chunks = PngTestFiles.Chunks(memory.ToArray());
        Assert.Equal(0, chunks[0].Data[9]); // colour type gray
        var decoded = ImageDecoder.Decode(memory.ToArray());
        Assert.Equal(3, decoded.Channels);
        for (int i = 0; i < gray.Length; i++) Assert.Equal(gray[i], decoded.GetPixel(i % 5, i / 5).R);
        Assert.Equal(RgbImage.FromGray(5, 9, gray).Pixels, decoded.Pixels);
    }

    [Fact]
    public void GrayAlphaRawRoundTrips()
    {
        var la = PngTestFiles.Pattern(4, 3, 2);
        using var memory = new MemoryStream();
        PngEncoder.EncodeRaw(memory, 4, 3, PngColorType.GrayAlpha, la);
        var decoded = ImageDecoder.Decode(memory.ToArray(), keepAlpha: true);
        for (int i = 0; i < 12; i++)
        {
            Assert.Equal(la[2 * i], decoded.Pixels[4 * i]);
            Assert.Equal(la[2 * i + 1], decoded.Pixels[4 * i + 3]);
        }
    }

    [Fact]
    public void FileHasSignatureHeaderAndValidCrcsInCanonicalOrder()
    {
        var image = new RgbImage(3, 7, PngTestFiles.Pattern(3, 7, 3));
        var png = PngEncoder.Encode(image, [new PngText("parameters", "x")]);
        Assert.Equal(PngTestFiles.Signature, png[..8]);
        var chunks = PngTestFiles.Chunks(png);
        Assert.All(chunks, c => Assert.Equal(c.ComputedCrc, c.StoredCrc));
        Assert.Equal(["IHDR", "tEXt", "IDAT", "IEND"], chunks.Select(c => c.Type));
        var ihdr = chunks[0].Data;
        Assert.Equal(13, ihdr.Length);
        Assert.Equal(3, BinaryPrimitives.ReadInt32BigEndian(ihdr));
        Assert.Equal(7, BinaryPrimitives.ReadInt32BigEndian(ihdr.AsSpan(4)));
        Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, ihdr[8..]);
        Assert.Empty(chunks[^1].Data);
    }

    [Fact]
    public void LargeImagesSplitImageDataIntoSeveralChunks()
    {
        var noise = new byte[600 * 600 * 3];
        new Random(3).NextBytes(noise);
        var png = PngEncoder.Encode(new RgbImage(600, 600, noise));
        var idat = PngTestFiles.Chunks(png).Where(c => c.Type == "IDAT").ToList();
        Assert.True(idat.Count > 1);
        Assert.All(idat.SkipLast(1), c => Assert.Equal(1 << 18, c.Data.Length));
        Assert.Equal(noise, ImageDecoder.Decode(png).Pixels);
    }

    [Fact]
    public void LatinTextIsTextChunkAndOtherTextIsInternationalUtf8()
    {
        var prompt = "猫の写真, Ünïcödé ✓";
        var png = PngEncoder.Encode(RgbImage.Filled(2, 2, Rgb.White), [new PngText("parameters", "café, 1girl"), new PngText("prompt", prompt)]);
        var chunks = PngTestFiles.Chunks(png);
        var text = Assert.Single(chunks, c => c.Type == "tEXt");
        Assert.Equal(Encoding.Latin1.GetBytes("parameters\0café, 1girl"), text.Data);
        var itxt = Assert.Single(chunks, c => c.Type == "iTXt");
        Assert.Equal([.. Encoding.ASCII.GetBytes("prompt"), 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes(prompt)], itxt.Data);

        var read = PngReader.ReadText(png);
        Assert.Equal([new PngText("parameters", "café, 1girl"), new PngText("prompt", prompt)], read);
        Assert.Equal(prompt, read.Find("prompt"));
        Assert.Null(read.Find("missing"));
    }

    [Fact]
    public void ReadsTextChunksWrittenByPillow()
    {
        var texts = PngReader.ReadText(PngTestFiles.Fixture("a1111_text.png"));
        Assert.StartsWith("a cat, highly detailed\nNegative prompt: blurry\nSteps: 20,", texts.Find("parameters"));
        Assert.Equal("zipped latin-1 café", texts.Find("Comment"));
        Assert.Equal("猫の写真", texts.Find("Title"));
        Assert.Equal("Кот zipped", texts.Find("Description"));
    }

    [Fact]
    public void ReadsHandMadeCompressedTextChunks()
    {
        var ztxt = (byte[])[.. Encoding.Latin1.GetBytes("Comment\0"), 0, .. PngTestFiles.Zlib(Encoding.Latin1.GetBytes("déjà vu"))];
        var itxt = (byte[])[.. Encoding.ASCII.GetBytes("Title\0"), 1, 0, .. Encoding.ASCII.GetBytes("ja\0"), .. Encoding.UTF8.GetBytes("題\0"),
            .. PngTestFiles.Zlib(Encoding.UTF8.GetBytes("猫"))];
        var png = PngTestFiles.HandMadePng(1, 1, 8, 0, [0, 128], ("zTXt", ztxt), ("iTXt", itxt));
        Assert.Equal([new PngText("Comment", "déjà vu"), new PngText("Title", "猫")], PngReader.ReadText(png));
    }

    [Fact]
    public void ReaderRejectsCorruptChunksWithAClearMessage()
    {
        var png = PngEncoder.Encode(RgbImage.Filled(2, 2, Rgb.Black), [new PngText("parameters", "x")]);
        var flipped = (byte[])png.Clone();
        flipped[42] ^= 1; // inside the tEXt data
        Assert.Contains("CRC mismatch", Assert.Throws<InvalidDataException>(() => PngReader.ReadText(flipped)).Message);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => PngReader.ReadText(png[..^5])).Message);
        Assert.Contains("not a PNG", Assert.Throws<InvalidDataException>(() => PngReader.ReadText("GIF89a..."u8.ToArray())).Message);

        using var folder = new TempFolder();
        var path = folder.File("broken.png");
        File.WriteAllBytes(path, flipped);
        var e = Assert.Throws<ImageLoadException>(() => PngReader.ReadText(path));
        Assert.StartsWith(path + ": corrupt PNG: CRC mismatch", e.Message);
        Assert.Equal(folder.File("none.png") + ": file not found", Assert.Throws<ImageLoadException>(() => PngReader.ReadText(folder.File("none.png"))).Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" lead")]
    [InlineData("trail ")]
    [InlineData("two  spaces")]
    [InlineData("tab\tkey")]
    [InlineData("猫")]
    public void InvalidKeywordsAreRefused(string keyword)
    {
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(RgbImage.Filled(1, 1, Rgb.Black), [new PngText(keyword, "x")]));
    }

    [Fact]
    public void TooLongKeywordAndNulInTextAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new PngText(new string('k', 80), "x").Validate());
        Assert.Throws<ArgumentException>(() => new PngText("k", "a\0b").Validate());
        new PngText(new string('k', 79), "x").Validate();
    }

    [Fact]
    public void SaveIsAtomicAndLeavesNoTemporaryFiles()
    {
        using var folder = new TempFolder();
        var path = folder.File("out.png");
        File.WriteAllText(path, "old content");
        var image = new RgbImage(3, 2, PngTestFiles.Pattern(3, 2, 3));
        image.SavePng(path);
        Assert.Equal(image.Pixels, RgbImage.Load(path).Pixels);
        Assert.Equal(["out.png"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));

        // A failure while writing keeps the old file and removes the temporary one.
        Assert.Throws<ArgumentException>(() => PngEncoder.Save(path, image, [new PngText("bad  keyword", "x")]));
        Assert.Equal(image.Pixels, RgbImage.Load(path).Pixels);
        Assert.Equal(["out.png"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void SavesGenerationParametersThatReadBack()
    {
        using var folder = new TempFolder();
        var parameters = new GenerationParameters
        {
            Prompt = "a red fox in snow, 猫",
            NegativePrompt = "blurry",
            Steps = 25,
            Sampler = "DDIM",
            CfgScale = 7.5,
            Seed = 1234,
            Width = 8,
            Height = 8,
            Model = "tiny-sd",
        };
        var path = folder.File("fox.png");
        RgbImage.Filled(8, 8, new Rgb(200, 80, 10)).SavePng(path, parameters);
        Assert.Equal(parameters, GenerationParameters.FromPng(path));
        Assert.Equal("iTXt", PngTestFiles.Chunks(File.ReadAllBytes(path))[1].Type);

        var plain = folder.File("plain.png");
        RgbImage.Filled(2, 2, Rgb.White).SavePng(plain);
        Assert.Null(GenerationParameters.FromPng(plain));
    }

    private static byte[] Inflate(byte[] zlib)
    {
        using var z = new System.IO.Compression.ZLibStream(new MemoryStream(zlib), System.IO.Compression.CompressionMode.Decompress);
        using var output = new MemoryStream();
        z.CopyTo(output);
        return output.ToArray();
    }
}

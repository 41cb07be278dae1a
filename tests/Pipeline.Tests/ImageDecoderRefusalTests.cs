using System.Buffers.Binary;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

// Damaged and hostile files: each is refused with one line naming the file, never decoded in part,
// and never crashes the process.
public class ImageDecoderRefusalTests
{
    [Fact]
    public void AnImageLinkedToDevZeroIsRefusedAtTheSizeLimitNamingTheLink()
    {
        var folder = Directory.CreateTempSubdirectory("ld-image-zero-").FullName;
        try
        {
            var link = Path.Combine(folder, "zero.png");
            File.CreateSymbolicLink(link, "/dev/zero");
            var decode = Assert.Throws<FileTooLargeException>(() => ImageDecoder.Load(link));
            Assert.StartsWith($"{link}: image is larger than the", decode.Message);
            var text = Assert.Throws<FileTooLargeException>(() => PngReader.ReadText(link));
            Assert.StartsWith($"{link}: PNG image is larger than the", text.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void PngWithABadHeaderCrcIsRefused()
    {
        var png = PngEncoder.Encode(new RgbImage(6, 4, PngTestFiles.Pattern(6, 4, 3)));
        png[29] ^= 0x01; // the IHDR CRC
        // libpng (inside Skia) refuses it by itself: our own header reader only names the problem.
        AssertRefused("bad-crc.png: corrupt PNG image (CRC mismatch in the IHDR chunk)", png, "bad-crc.png");
    }

    [Fact]
    public void BmpWithoutPixelDataIsRefused()
    {
        var bmp = PngTestFiles.Bmp(5, 3, PngTestFiles.Pattern(5, 3, 3));
        AssertRefused("empty.bmp: truncated BMP image (the file ends before the image does)", bmp[..54], "empty.bmp");
    }

    [Fact]
    public void TruncatedGifIsRefused()
    {
        (byte, byte, byte)[] palette = [(0, 0, 0), (255, 255, 255)];
        var gif = GifTestFile.Write(40, 30, [.. Enumerable.Range(0, 1200).Select(i => (byte)(i & 1))], palette);
        AssertRefused("cut.gif: truncated GIF image (the file ends before the image does)", gif[..(gif.Length * 2 / 3)], "cut.gif");
    }

    [Fact]
    public void TruncatedJpegIsRefused()
    {
        var jpeg = File.ReadAllBytes(PngTestFiles.Fixture("gradient.jpg"));
        AssertRefused("cut.jpg: truncated JPEG image (the file ends before the image does)", jpeg[..(jpeg.Length * 2 / 3)], "cut.jpg");
    }

    [Fact]
    public void TruncatedWebpIsRefused()
    {
        var webp = WebpTestFile.Write(9, 7, PngTestFiles.Pattern(9, 7, 4));
        AssertRefused("cut.webp: truncated WebP image (the file ends before the image does)", webp[..(webp.Length * 2 / 3)], "cut.webp");
    }

    [Fact]
    public void PixelLimitIsCheckedFromAnyHeaderBeforeDecoding()
    {
        // A BMP header claiming 10000 × 10000 and no pixels: Skia reads the size, the limit refuses it.
        var bmp = PngTestFiles.Bmp(1, 1, [1, 2, 3])[..54];
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), 10000);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), 10000);
        AssertRefused("huge.bmp: image is 10000x10000 (100 megapixels), over the limit of 64 megapixels", bmp, "huge.bmp");
    }

    [Fact]
    public void FormatsSkiaDoesNotReadAreNamed()
    {
        byte[] tiff = [.. "II*\0"u8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        AssertRefused("scan.tif: unsupported image format (TIFF); PNG, JPEG, WebP, BMP and GIF are read", tiff, "scan.tif");
        // A 1 × 1 icon: Skia reads ICO, but it is not a format this project accepts.
        var ico = new byte[6 + 16 + 40 + 4 + 4];
        ico[2] = 1; // type: icon
        ico[4] = 1; // one image:
        ico[6] = ico[7] = 1; // 1 × 1
        ico[10] = 1; // one plane
        ico[12] = 32; // 32 bits per pixel
        BinaryPrimitives.WriteInt32LittleEndian(ico.AsSpan(14), 48); // size of the image data
        BinaryPrimitives.WriteInt32LittleEndian(ico.AsSpan(18), 22); // its offset
        BinaryPrimitives.WriteInt32LittleEndian(ico.AsSpan(22), 40); // a BITMAPINFOHEADER, height doubled for the mask
        BinaryPrimitives.WriteInt32LittleEndian(ico.AsSpan(26), 1);
        BinaryPrimitives.WriteInt32LittleEndian(ico.AsSpan(30), 2);
        ico[34] = 1;
        ico[36] = 32;
        AssertRefused("icon.ico: unsupported image format (ICO); PNG, JPEG, WebP, BMP and GIF are read", ico, "icon.ico");
    }

    [Fact]
    public void DamagedFilesAreRefusedOrDecodedButNeverCrash()
    {
        // Bounded and seeded: every truncation point of small files, and byte flips in each format.
        var jpeg = File.ReadAllBytes(PngTestFiles.Fixture("gradient.jpg"));
        byte[][] files =
        [
            PngEncoder.Encode(new RgbImage(12, 9, PngTestFiles.Pattern(12, 9, 4), 4)),
            jpeg,
            PngTestFiles.Bmp(7, 5, PngTestFiles.Pattern(7, 5, 3)),
            GifTestFile.Write(11, 6, [.. Enumerable.Range(0, 66).Select(i => (byte)(i % 5))], [(1, 2, 3), (200, 10, 10), (9, 9, 9), (0, 255, 0), (7, 7, 70)]),
            WebpTestFile.Write(6, 5, PngTestFiles.Pattern(6, 5, 4)),
        ];
        var random = new Random(12);
        foreach (var file in files)
        {
            for (int length = 1; length < file.Length; length += Math.Max(1, file.Length / 97)) DecodeOrRefuse(file[..length]);
            for (int i = 0; i < 60; i++)
            {
                var damaged = (byte[])file.Clone();
                for (int k = 0; k < 3; k++) damaged[random.Next(damaged.Length)] = (byte)random.Next(256);
                DecodeOrRefuse(damaged);
            }
        }
    }

    private static void DecodeOrRefuse(byte[] data)
    {
        try
        {
            var image = ImageDecoder.Decode(data, "damaged", keepAlpha: true);
            Assert.Equal(image.PixelCount * 4, image.Pixels.LongLength);
        }
        catch (ImageLoadException e)
        {
            Assert.StartsWith("damaged: ", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    private static void AssertRefused(string expected, byte[] data, string name)
    {
        var e = Assert.Throws<ImageLoadException>(() => ImageDecoder.Decode(data, name));
        Assert.Equal(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}

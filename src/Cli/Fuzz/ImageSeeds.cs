using System.Buffers.Binary;
using LatentDiffusion.Pipeline.Imaging;
using SkiaSharp;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>Small valid images to mutate, made in code so that a case reproduces anywhere:
/// PNG (our encoder), JPEG and WebP (Skia), BMP (by hand) and a 1×1 GIF.</summary>
public static class ImageSeeds
{
    public const int Width = 8, Height = 6;

    private static readonly Lazy<IReadOnlyList<(string Name, byte[] Data)>> All = new(Make);

    public static IReadOnlyList<(string Name, byte[] Data)> Images => All.Value;

    private static List<(string, byte[])> Make()
    {
        var pixels = new byte[Width * Height * 3];
        for (var y = 0; y < Height; y++)
            for (var x = 0; x < Width; x++)
            {
                var i = 3 * (y * Width + x);
                (pixels[i], pixels[i + 1], pixels[i + 2]) = ((byte)(x * 30), (byte)(y * 40), (byte)(x * y * 5 + 20));
            }
        var image = new RgbImage(Width, Height, pixels);
        return
        [
            ("seed.png", PngEncoder.Encode(image)),
            ("seed.jpg", Skia(image, SKEncodedImageFormat.Jpeg)),
            ("seed.webp", Skia(image, SKEncodedImageFormat.Webp)),
            ("seed.bmp", Bmp(image)),
            // A 1×1 GIF89a (global colour table of two, one LZW-coded pixel).
            ("seed.gif", [0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]),
        ];
    }

    private static byte[] Skia(RgbImage image, SKEncodedImageFormat format)
    {
        using var bitmap = new SKBitmap(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (var y = 0; y < image.Height; y++)
            for (var x = 0; x < image.Width; x++)
            {
                var c = image.GetPixel(x, y);
                bitmap.SetPixel(x, y, new SKColor(c.R, c.G, c.B));
            }
        using var encoded = SKImage.FromBitmap(bitmap).Encode(format, 90);
        return encoded.ToArray();
    }

    // 24-bit bottom-up BMP with a BITMAPINFOHEADER.
    private static byte[] Bmp(RgbImage image)
    {
        var stride = (image.Width * 3 + 3) & ~3;
        var size = 54 + stride * image.Height;
        var d = new byte[size];
        d[0] = (byte)'B';
        d[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(2), size);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(18), image.Width);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(22), image.Height);
        BinaryPrimitives.WriteInt16LittleEndian(d.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(d.AsSpan(28), 24);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(34), stride * image.Height);
        for (var y = 0; y < image.Height; y++)
            for (var x = 0; x < image.Width; x++)
            {
                var c = image.GetPixel(x, image.Height - 1 - y);
                var i = 54 + y * stride + 3 * x;
                (d[i], d[i + 1], d[i + 2]) = (c.B, c.G, c.R);
            }
        return d;
    }
}

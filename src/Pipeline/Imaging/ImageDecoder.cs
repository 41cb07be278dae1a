using System.Globalization;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Width, height and channel count as stored in an image file.</summary>
public readonly record struct ImageInfo(int Width, int Height, int Channels)
{
    public long PixelCount => (long)Width * Height;
}

/// <summary>
/// Reads PNG (8 and 16 bit, gray, palette, alpha), JPEG, WebP, BMP and GIF (first frame) with SkiaSharp,
/// turned upright by the EXIF orientation as browsers show it. The size is read from the header and
/// checked against a pixel limit before anything is decoded, so a small file that claims a huge
/// image cannot exhaust memory. A truncated or corrupt file is refused, never decoded in part.
/// </summary>
public static class ImageDecoder
{
    /// <summary>The default pixel limit: 64 megapixels (e.g. 8192 × 7812).</summary>
    public const long DefaultMaxPixels = 64_000_000;

    /// <summary>Decodes the image file at <paramref name="path"/> as RGB, or RGBA when <paramref name="keepAlpha"/>.</summary>
    /// <exception cref="ImageLoadException">for any reason the image cannot be read.</exception>
    public static RgbImage Load(string path, bool keepAlpha = false, long maxPixels = DefaultMaxPixels) =>
        Decode(ReadFile(path), path, keepAlpha, maxPixels);

    /// <summary>The size of the image file at <paramref name="path"/>, from its header (nothing is decoded).</summary>
    public static ImageInfo ReadInfo(string path) => ReadInfo(ReadFile(path), path);

    /// <summary>The upright size and the channels stored, from the header (nothing is decoded).</summary>
    /// <exception cref="ImageLoadException">when the data is not an image we read.</exception>
    public static ImageInfo ReadInfo(ReadOnlySpan<byte> data, string name = "image")
    {
        using var image = Open(data, name);
        return image.Info ?? throw image.Failure!;
    }

    /// <summary>Decodes image bytes; <paramref name="name"/> labels the data in error messages.</summary>
    /// <exception cref="ImageLoadException">for any reason the image cannot be decoded.</exception>
    public static RgbImage Decode(ReadOnlySpan<byte> data, string name = "image", bool keepAlpha = false, long maxPixels = DefaultMaxPixels)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPixels);
        using var image = Open(data, name);
        var info = image.Info ?? throw image.Failure!;
        if (info.PixelCount > maxPixels)
            throw new ImageLoadException(name, $"image is {info.Width}x{info.Height} ({Pixels(info.PixelCount)}), over the limit of {Pixels(maxPixels)}");
        // Skia decodes into an RGBA buffer first, so that is the array that must fit.
        if (info.PixelCount * 4 > Array.MaxLength)
            throw new ImageLoadException(name, $"image is {info.Width}x{info.Height}, too large to hold in memory");
        return image.Decode(keepAlpha ? 4 : 3);
    }

    private static SkiaImage Open(ReadOnlySpan<byte> data, string name)
    {
        if (data.IsEmpty) throw new ImageLoadException(name, "empty file, not an image");
        var image = SkiaImage.Open(data, name);
        if (image.Info is { } info && (info.Width <= 0 || info.Height <= 0))
        {
            image.Dispose();
            throw new ImageLoadException(name, $"image has zero size ({info.Width}x{info.Height})");
        }
        return image;
    }

    private static byte[] ReadFile(string path)
    {
        try
        {
            if (Directory.Exists(path)) throw new ImageLoadException(path, "is a directory, not an image file");
            var file = new FileInfo(path);
            if (!file.Exists) throw new ImageLoadException(path, "file not found");
            return BoundedFile.ReadAllBytes(path, BoundedFile.ImageLimit, "image");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ImageLoadException(path, $"cannot read the file ({e.Message})", e);
        }
    }

    private static string Pixels(long pixels) => pixels >= 1_000_000
        ? (pixels / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + " megapixels"
        : pixels.ToString(CultureInfo.InvariantCulture) + " pixels";
}

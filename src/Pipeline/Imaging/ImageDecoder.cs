using System.Globalization;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Width, height and channel count as stored in an image file.</summary>
public readonly record struct ImageInfo(int Width, int Height, int Channels)
{
    public long PixelCount => (long)Width * Height;
}

/// <summary>
/// Reads PNG (8 and 16 bit, gray, palette, alpha), JPEG, BMP, GIF (first frame), TGA, PSD, PNM and
/// HDR through libstb0. The size is read from the header and checked against a pixel limit before
/// anything is decoded, so a small file that claims a huge image cannot exhaust memory.
/// </summary>
public static class ImageDecoder
{
    /// <summary>The default pixel limit: 64 megapixels (e.g. 8192 × 7812).</summary>
    public const long DefaultMaxPixels = 64_000_000;

    /// <summary>Decodes the image file at <paramref name="path"/> as RGB, or RGBA when <paramref name="keepAlpha"/>.</summary>
    /// <exception cref="ImageLoadException">for any reason the image cannot be read.</exception>
    public static RgbImage Load(string path, bool keepAlpha = false, long maxPixels = DefaultMaxPixels) =>
        Decode(ReadFile(path), path, keepAlpha, maxPixels);

    /// <summary>Reads only the header of the image file at <paramref name="path"/>.</summary>
    public static ImageInfo ReadInfo(string path) => ReadInfo(ReadFile(path), path);

    public static unsafe ImageInfo ReadInfo(ReadOnlySpan<byte> data, string name = "image")
    {
        CheckLength(data, name);
        int x = 0, y = 0, channels = 0, ok;
        fixed (byte* p = data)
        {
            // The first stb call loads libstb.so.0: its absence becomes the one exception type, with the fix.
            try
            {
                ok = Stb.InfoFromMemory(p, data.Length, &x, &y, &channels);
            }
            catch (DllNotFoundException e)
            {
                throw new ImageLoadException(name, $"cannot decode images: {Stb.Library} was not found (install it: apt install libstb0)", e);
            }
            catch (EntryPointNotFoundException e)
            {
                throw new ImageLoadException(name, $"cannot decode images: {Stb.Library} is too old ({e.Message}; apt install libstb0)", e);
            }
        }
        if (ok == 0)
        {
            var reason = Stb.LastFailure();
            throw new ImageLoadException(name, reason == "too large"
                ? $"image dimensions are too large to decode (stb: {reason})"
                : $"not a supported image (stb: {reason})");
        }
        if (x <= 0 || y <= 0) throw new ImageLoadException(name, $"image has zero size ({x}x{y})");
        return new ImageInfo(x, y, channels);
    }

    /// <summary>Decodes image bytes; <paramref name="name"/> labels the data in error messages.</summary>
    /// <exception cref="ImageLoadException">for any reason the image cannot be decoded.</exception>
    public static unsafe RgbImage Decode(ReadOnlySpan<byte> data, string name = "image", bool keepAlpha = false, long maxPixels = DefaultMaxPixels)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPixels);
        var info = ReadInfo(data, name);
        int channels = keepAlpha ? 4 : 3;
        if (info.PixelCount > maxPixels || info.PixelCount * channels > Array.MaxLength)
            throw new ImageLoadException(name,
                $"image is {info.Width}x{info.Height} ({Megapixels(info.PixelCount)} megapixels), over the limit of {Megapixels(maxPixels)} megapixels");

        int x, y, inFile;
        byte* pixels;
        fixed (byte* p = data) pixels = Stb.LoadFromMemory(p, data.Length, &x, &y, &inFile, channels);
        if (pixels == null) throw new ImageLoadException(name, $"corrupt or truncated image (stb: {Stb.LastFailure()})");
        try
        {
            if (x != info.Width || y != info.Height)
                throw new ImageLoadException(name, $"corrupt image: header says {info.Width}x{info.Height} but {x}x{y} was decoded");
            var bytes = new ReadOnlySpan<byte>(pixels, checked(x * y * channels)).ToArray();
            return new RgbImage(x, y, bytes, channels);
        }
        finally
        {
            Stb.ImageFree(pixels);
        }
    }

    private static byte[] ReadFile(string path)
    {
        try
        {
            if (Directory.Exists(path)) throw new ImageLoadException(path, "is a directory, not an image file");
            var file = new FileInfo(path);
            if (!file.Exists) throw new ImageLoadException(path, "file not found");
            if (file.Length > int.MaxValue) throw new ImageLoadException(path, $"file is too large ({file.Length} bytes)");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ImageLoadException(path, $"cannot read the file ({e.Message})", e);
        }
    }

    private static void CheckLength(ReadOnlySpan<byte> data, string name)
    {
        if (data.IsEmpty) throw new ImageLoadException(name, "empty file, not an image");
    }

    private static string Megapixels(long pixels) => (pixels / 1e6).ToString("0.#", CultureInfo.InvariantCulture);
}

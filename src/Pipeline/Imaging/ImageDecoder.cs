using System.Buffers.Binary;
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

    /// <summary>The size of the image file at <paramref name="path"/>, from its header (nothing is decoded).</summary>
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
            // stb's info gives up on PNGs beyond its own size limits; their header still tells the size.
            if (PngHeader(data) is { } header) return CheckSize(header, name);
            throw new ImageLoadException(name, $"not a supported image (stb: {Stb.LastFailure()})");
        }
        return CheckSize(new ImageInfo(x, y, channels), name);
    }

    private static ImageInfo CheckSize(ImageInfo info, string name) =>
        info.Width > 0 && info.Height > 0 ? info : throw new ImageLoadException(name, $"image has zero size ({info.Width}x{info.Height})");

    /// <summary>Width, height and channels from a PNG's IHDR chunk, or null when the data does not start like a PNG.</summary>
    private static ImageInfo? PngHeader(ReadOnlySpan<byte> data)
    {
        if (data.Length < 8 + 8 + 13 || !data.StartsWith(PngChunkWriter.Signature) || !data.Slice(12, 4).SequenceEqual("IHDR"u8)) return null;
        uint width = BinaryPrimitives.ReadUInt32BigEndian(data[16..]), height = BinaryPrimitives.ReadUInt32BigEndian(data[20..]);
        if (width > int.MaxValue || height > int.MaxValue) return null;
        int channels = data[25] switch { 0 => 1, 4 => 2, 6 => 4, _ => 3 };
        return new ImageInfo((int)width, (int)height, channels);
    }

    /// <summary>Decodes image bytes; <paramref name="name"/> labels the data in error messages.</summary>
    /// <exception cref="ImageLoadException">for any reason the image cannot be decoded.</exception>
    public static unsafe RgbImage Decode(ReadOnlySpan<byte> data, string name = "image", bool keepAlpha = false, long maxPixels = DefaultMaxPixels)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPixels);
        var info = ReadInfo(data, name);
        int channels = keepAlpha ? 4 : 3;
        if (info.PixelCount > maxPixels)
            throw new ImageLoadException(name, $"image is {info.Width}x{info.Height} ({Pixels(info.PixelCount)}), over the limit of {Pixels(maxPixels)}");
        if (info.PixelCount * channels > Array.MaxLength)
            throw new ImageLoadException(name, $"image is {info.Width}x{info.Height}, too large to hold in memory");

        int x, y, inFile;
        byte* pixels;
        fixed (byte* p = data) pixels = Stb.LoadFromMemory(p, data.Length, &x, &y, &inFile, channels);
        if (pixels == null)
        {
            var reason = Stb.LastFailure();
            throw new ImageLoadException(name, reason == "too large"
                ? $"image is {info.Width}x{info.Height}, too large to decode (stb: {reason})"
                : $"corrupt or truncated image (stb: {reason})");
        }
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

    private static string Pixels(long pixels) => pixels >= 1_000_000
        ? (pixels / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + " megapixels"
        : pixels.ToString(CultureInfo.InvariantCulture) + " pixels";
}

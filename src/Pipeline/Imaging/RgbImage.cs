namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// An 8-bit image in memory: rows top to bottom, pixels interleaved RGB (3 channels) or RGBA (4).
/// </summary>
public sealed partial class RgbImage
{
    public int Width { get; }
    public int Height { get; }

    /// <summary>3 (RGB) or 4 (RGBA).</summary>
    public int Channels { get; }

    /// <summary>Width × Height × Channels bytes; the image's own buffer, not a copy.</summary>
    public byte[] Pixels { get; }

    public bool HasAlpha => Channels == 4;

    public long PixelCount => (long)Width * Height;

    public RgbImage(int width, int height, byte[] pixels, int channels = 3)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        if (channels is not (3 or 4)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "an RgbImage has 3 (RGB) or 4 (RGBA) channels");
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.LongLength != (long)width * height * channels)
            throw new ArgumentException($"a {width}x{height} image with {channels} channels needs {(long)width * height * channels} bytes but {pixels.LongLength} were given", nameof(pixels));
        Width = width;
        Height = height;
        Channels = channels;
        Pixels = pixels;
    }

    /// <summary>
    /// The byte length of a <paramref name="width"/> × <paramref name="height"/> image with <paramref name="channels"/>
    /// channels, computed in long: a size whose buffer would not fit in a .NET array is refused with a message naming
    /// it, before any int arithmetic on the product can overflow.
    /// </summary>
    public static int BufferLength(long width, long height, int channels = 3)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var bytes = (double)width * height * channels;
        if (bytes > Array.MaxLength)
            throw new ArgumentException($"a {width}×{height} image with {channels} channels needs {bytes:0} bytes, more than an image buffer holds ({Array.MaxLength} bytes)");
        return (int)bytes;
    }

    /// <summary>A new image filled with one colour (opaque when RGBA).</summary>
    public static RgbImage Filled(int width, int height, Rgb color, int channels = 3)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var image = new RgbImage(width, height, new byte[BufferLength(width, height, channels)], channels);
        for (int i = 0; i < image.Pixels.Length; i += channels)
        {
            image.Pixels[i] = color.R;
            image.Pixels[i + 1] = color.G;
            image.Pixels[i + 2] = color.B;
            if (channels == 4) image.Pixels[i + 3] = 255;
        }
        return image;
    }

    /// <summary>Builds an RGB image from one byte per pixel (grayscale), e.g. a Fashion-MNIST digit.</summary>
    public static RgbImage FromGray(int width, int height, ReadOnlySpan<byte> gray)
    {
        if (gray.Length != (long)width * height)
            throw new ArgumentException($"a {width}x{height} grayscale image needs {(long)width * height} bytes but {gray.Length} were given", nameof(gray));
        var rgb = new byte[gray.Length * 3];
        for (int i = 0; i < gray.Length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
        return new RgbImage(width, height, rgb);
    }

    private int Offset(int x, int y)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
            throw new ArgumentOutOfRangeException(nameof(x), $"pixel ({x}, {y}) is outside the {Width}x{Height} image");
        return (y * Width + x) * Channels;
    }

    public Rgb GetPixel(int x, int y)
    {
        var o = Offset(x, y);
        return new Rgb(Pixels[o], Pixels[o + 1], Pixels[o + 2]);
    }

    /// <summary>Sets R, G, B (and makes the pixel opaque when RGBA).</summary>
    public void SetPixel(int x, int y, Rgb color)
    {
        var o = Offset(x, y);
        Pixels[o] = color.R;
        Pixels[o + 1] = color.G;
        Pixels[o + 2] = color.B;
        if (Channels == 4) Pixels[o + 3] = 255;
    }

    public byte GetAlpha(int x, int y) => Channels == 4 ? Pixels[Offset(x, y) + 3] : (byte)255;

    public RgbImage Clone() => new(Width, Height, (byte[])Pixels.Clone(), Channels);

    /// <summary>The RGB channels only; alpha is dropped, as PIL's convert("RGB") does.</summary>
    public RgbImage ToRgb()
    {
        if (Channels == 3) return this;
        var rgb = new byte[PixelCount * 3];
        for (long i = 0, j = 0; i < rgb.LongLength; i += 3, j += 4)
        {
            rgb[i] = Pixels[j];
            rgb[i + 1] = Pixels[j + 1];
            rgb[i + 2] = Pixels[j + 2];
        }
        return new RgbImage(Width, Height, rgb);
    }

    /// <summary>An RGBA copy; RGB pixels become opaque.</summary>
    public RgbImage ToRgba()
    {
        if (Channels == 4) return this;
        var rgba = new byte[PixelCount * 4];
        for (long i = 0, j = 0; j < rgba.LongLength; i += 3, j += 4)
        {
            rgba[j] = Pixels[i];
            rgba[j + 1] = Pixels[i + 1];
            rgba[j + 2] = Pixels[i + 2];
            rgba[j + 3] = 255;
        }
        return new RgbImage(Width, Height, rgba, 4);
    }

    /// <summary>The rectangle at (<paramref name="x"/>, <paramref name="y"/>) of the given size, copied.</summary>
    public RgbImage Crop(int x, int y, int width, int height)
    {
        if (x < 0 || y < 0 || width <= 0 || height <= 0 || x + width > Width || y + height > Height)
            throw new ArgumentOutOfRangeException(nameof(x), $"crop {width}x{height} at ({x}, {y}) does not fit inside the {Width}x{Height} image");
        var result = new byte[BufferLength(width, height, Channels)];
        int rowBytes = width * Channels;
        for (int row = 0; row < height; row++)
            Array.Copy(Pixels, ((y + row) * Width + x) * Channels, result, row * rowBytes, rowBytes);
        return new RgbImage(width, height, result, Channels);
    }

    /// <summary>Copies <paramref name="source"/> onto this image with its top-left corner at (x, y); parts outside are clipped.</summary>
    public void Paste(RgbImage source, int x, int y)
    {
        if (source.Channels != Channels) source = Channels == 4 ? source.ToRgba() : source.ToRgb();
        int x0 = Math.Max(0, x), y0 = Math.Max(0, y);
        int x1 = Math.Min(Width, x + source.Width), y1 = Math.Min(Height, y + source.Height);
        if (x0 >= x1 || y0 >= y1) return;
        int rowBytes = (x1 - x0) * Channels;
        for (int row = y0; row < y1; row++)
            Array.Copy(source.Pixels, ((row - y) * source.Width + (x0 - x)) * Channels, Pixels, (row * Width + x0) * Channels, rowBytes);
    }

    public override string ToString() => $"RgbImage({Width}x{Height}, {(HasAlpha ? "RGBA" : "RGB")})";
}

/// <summary>An 8-bit RGB colour.</summary>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    public static readonly Rgb Black = new(0, 0, 0);
    public static readonly Rgb White = new(255, 255, 255);
}

using SkiaSharp;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// An encoded image opened with Skia's SKCodec: the header has been read (size, orientation) and
/// nothing has been decoded. When Skia cannot open the data, <see cref="Failure"/> says why; the size
/// may still be known from a PNG's own header, so that the pixel limit can be reported first.
/// </summary>
internal sealed class SkiaImage : IDisposable
{
    private readonly SKCodec? codec;
    private readonly string name;
    private readonly bool endsEarly;

    /// <summary>The upright size (EXIF orientation applied) and the channels in the file; null when unknown.</summary>
    internal ImageInfo? Info { get; }

    /// <summary>Why Skia could not open the data, or null when it could.</summary>
    internal ImageLoadException? Failure { get; }

    private SkiaImage(string name, bool endsEarly, SKCodec? codec, ImageInfo? info, ImageLoadException? failure)
    {
        this.name = name;
        this.endsEarly = endsEarly;
        this.codec = codec;
        Info = info;
        Failure = failure;
    }

    internal static SkiaImage Open(ReadOnlySpan<byte> data, string name)
    {
        var format = ImageSignature.Name(data);
        bool endsEarly = ImageSignature.EndsEarly(data, format);
        var (codec, result) = CreateCodec(data, name);
        if (codec is null)
        {
            var problem = PngHeader.HasBadCrc(data) ? "corrupt PNG image (CRC mismatch in the IHDR chunk)" : OpenProblem(result, format, endsEarly);
            return new SkiaImage(name, endsEarly, null, PngHeader.Read(data), new ImageLoadException(name, problem));
        }
        var encoded = Name(codec.EncodedFormat);
        if (!ImageSignature.IsSupported(encoded))
        {
            codec.Dispose();
            return new SkiaImage(name, endsEarly, null, null, new ImageLoadException(name, $"unsupported image format ({encoded}); {ImageSignature.Supported} are read"));
        }
        var size = codec.Info;
        bool swap = ImageOrientation.SwapsAxes(codec.EncodedOrigin);
        var channels = PngHeader.Read(data)?.Channels ?? Channels(size);
        return new SkiaImage(name, endsEarly, codec, new ImageInfo(swap ? size.Height : size.Width, swap ? size.Width : size.Height, channels), null);
    }

    /// <summary>Decodes the first frame as upright RGB (3 channels) or RGBA (4, not premultiplied).</summary>
    internal unsafe RgbImage Decode(int channels)
    {
        if (codec is null) throw Failure!;
        var size = codec.Info;
        // Straight (not premultiplied) alpha and no colour space: the values the file stores, with no colour management (as before).
        var target = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[(long)size.Width * size.Height * 4];
        SKCodecResult result;
        fixed (byte* pixels = rgba) result = codec.GetPixels(target, (IntPtr)pixels, size.Width * 4, new SKCodecOptions(0));
        if (result != SKCodecResult.Success) throw new ImageLoadException(name, Problem(result, Name(codec.EncodedFormat), endsEarly, "pixel data"));
        return ImageOrientation.Apply(rgba, size.Width, size.Height, codec.EncodedOrigin, channels);
    }

    public void Dispose() => codec?.Dispose();

    private static (SKCodec? Codec, SKCodecResult Result) CreateCodec(ReadOnlySpan<byte> data, string name)
    {
        try
        {
            using var copy = SKData.CreateCopy(data);
            // SKCodec.Create takes the stream over (and frees it when it fails), so it is not disposed here.
            var codec = SKCodec.Create(new SKMemoryStream(copy), out var result);
            return (codec, result);
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException)
        {
            // The first Skia call loads libSkiaSharp.so (from the SkiaSharp.NativeAssets.Linux.NoDependencies package, copied beside the assemblies).
            throw new ImageLoadException(name, $"cannot decode images: the native library libSkiaSharp.so did not load ({Innermost(e).Message})", e);
        }
    }

    private static string OpenProblem(SKCodecResult result, string? format, bool endsEarly) => format switch
    {
        null => $"not an image (not {ImageSignature.Supported.Replace(" and ", " or ")})",
        _ when !ImageSignature.IsSupported(format) => $"unsupported image format ({format}); {ImageSignature.Supported} are read",
        _ => Problem(result, format, endsEarly, "header"),
    };

    // Skia's result alone does not tell truncated from corrupt (libpng reports a CRC error as
    // incomplete input, libwebp a cut-off stream as an error), so the file's own end decides.
    private static string Problem(SKCodecResult result, string format, bool endsEarly, string part) => result switch
    {
        _ when endsEarly => $"truncated {format} image (the file ends before the image does)",
        SKCodecResult.IncompleteInput or SKCodecResult.ErrorInInput or SKCodecResult.InvalidInput => $"corrupt {format} image (invalid {part})",
        _ => $"cannot decode the {format} image (Skia: {result})",
    };

    private static string Name(SKEncodedImageFormat format) => format switch
    {
        SKEncodedImageFormat.Png => "PNG",
        SKEncodedImageFormat.Jpeg => "JPEG",
        SKEncodedImageFormat.Gif => "GIF",
        SKEncodedImageFormat.Bmp => "BMP",
        SKEncodedImageFormat.Webp => "WebP",
        _ => format.ToString().ToUpperInvariant(),
    };

    // Channels in the file: 1 gray, 3 colour, 4 with alpha (PNGs are read from IHDR instead).
    private static int Channels(SKImageInfo info) => info.ColorType == SKColorType.Gray8 ? 1 : info.AlphaType == SKAlphaType.Opaque ? 3 : 4;

    private static Exception Innermost(Exception e) => e.InnerException is null ? e : Innermost(e.InnerException);
}

using System.IO.Compression;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>PNG colour types this encoder writes, all at 8 bits per sample.</summary>
public enum PngColorType : byte { Gray = 0, Rgb = 2, GrayAlpha = 4, Rgba = 6 }

public sealed record PngEncoderOptions
{
    public static PngEncoderOptions Default { get; } = new();

    public CompressionLevel Compression { get; init; } = CompressionLevel.Optimal;

    public PngFilter Filter { get; init; } = PngFilter.Adaptive;
}

/// <summary>Writes 8-bit PNG files (gray, gray + alpha, RGB, RGBA) with optional text chunks.</summary>
public static class PngEncoder
{
    /// <summary>Writes <paramref name="image"/> to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public static void Save(string path, RgbImage image, IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null)
    {
        var list = texts?.ToList();
        AtomicFile.Write(path, stream => Encode(stream, image, list, options));
    }

    /// <summary>Writes the image with its generation parameters in a <c>parameters</c> text chunk, as AUTOMATIC1111 does.</summary>
    public static void Save(string path, RgbImage image, GenerationParameters parameters, PngEncoderOptions? options = null) =>
        Save(path, image, [parameters.ToPngText()], options);

    /// <summary>Writes raw 8-bit samples (e.g. one byte per pixel for <see cref="PngColorType.Gray"/>) atomically.</summary>
    public static void SaveRaw(string path, int width, int height, PngColorType colorType, byte[] pixels,
        IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null)
    {
        var list = texts?.ToList();
        AtomicFile.Write(path, stream => EncodeRaw(stream, width, height, colorType, pixels, list, options));
    }

    public static byte[] Encode(RgbImage image, IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null)
    {
        using var memory = new MemoryStream();
        Encode(memory, image, texts, options);
        return memory.ToArray();
    }

    public static void Encode(Stream output, RgbImage image, IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null) =>
        EncodeRaw(output, image.Width, image.Height, image.HasAlpha ? PngColorType.Rgba : PngColorType.Rgb, image.Pixels, texts, options);

    public static void EncodeRaw(Stream output, int width, int height, PngColorType colorType, ReadOnlySpan<byte> pixels,
        IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var writer = new PngChunkWriter(output);
        writer.WriteSignature();
        writer.WriteHeader(width, height, colorType);
        writer.WriteTexts(texts);
        PngChunkWriter.CompressImage(width, height, Channels(colorType), pixels, options ?? PngEncoderOptions.Default,
            data => writer.Write("IDAT", data));
        writer.WriteEnd();
    }

    internal static int Channels(PngColorType colorType) => colorType switch
    {
        PngColorType.Gray => 1,
        PngColorType.GrayAlpha => 2,
        PngColorType.Rgb => 3,
        PngColorType.Rgba => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(colorType), colorType, "unsupported PNG colour type"),
    };
}

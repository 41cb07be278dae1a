using System.Buffers.Binary;

namespace LatentDiffusion.Pipeline.Imaging;

// Names an image format from its first bytes, for messages only: Skia decides what it decodes, but
// when it refuses data we can still say "a TIFF file" rather than "not an image".
internal static class ImageSignature
{
    internal const string Supported = "PNG, JPEG, WebP, BMP and GIF";

    /// <summary>The format that <paramref name="data"/> starts like, or null when it starts like no image format we know.</summary>
    internal static string? Name(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith(PngChunkWriter.Signature)) return "PNG";
        if (data.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return "JPEG";
        if (data.StartsWith("GIF87a"u8) || data.StartsWith("GIF89a"u8)) return "GIF";
        if (data.StartsWith("BM"u8)) return "BMP";
        if (data.Length >= 12 && data.StartsWith("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8)) return "WebP";
        return Unsupported(data);
    }

    /// <summary>Whether the format named by <see cref="Name"/> is one we decode.</summary>
    internal static bool IsSupported(string? name) => name is "PNG" or "JPEG" or "GIF" or "BMP" or "WebP";

    /// <summary>
    /// Whether the data stops before its format's end marker (PNG's IEND, JPEG's EOI, GIF's trailer) or
    /// before the length its header states (WebP's RIFF size, BMP's file size). Used only to tell a
    /// truncated file from a corrupt one once the decoder has refused it.
    /// </summary>
    internal static bool EndsEarly(ReadOnlySpan<byte> data, string? format) => format switch
    {
        "PNG" => !data.EndsWith((ReadOnlySpan<byte>)[0, 0, 0, 0, (byte)'I', (byte)'E', (byte)'N', (byte)'D', 0xAE, 0x42, 0x60, 0x82]),
        "JPEG" => !data.EndsWith((ReadOnlySpan<byte>)[0xFF, 0xD9]),
        "GIF" => data[^1] != 0x3B,
        "WebP" => BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) + 8L > data.Length,
        "BMP" => data.Length < 6 || BinaryPrimitives.ReadUInt32LittleEndian(data[2..]) > data.Length,
        _ => false,
    };

    // Formats other tools read that we do not, so that their refusal says so.
    private static string? Unsupported(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith("II*\0"u8) || data.StartsWith("MM\0*"u8)) return "TIFF";
        if (data.StartsWith("8BPS"u8)) return "PSD";
        if (data.StartsWith("#?RADIANCE"u8) || data.StartsWith("#?RGBE"u8)) return "HDR";
        if (data.StartsWith("qoif"u8)) return "QOI";
        if (data.Length >= 12 && data.Slice(4, 4).SequenceEqual("ftyp"u8)) return "HEIF/AVIF";
        if (data.StartsWith((ReadOnlySpan<byte>)[0xFF, 0x0A]) || data.StartsWith((ReadOnlySpan<byte>)[0, 0, 0, 0x0C, (byte)'J', (byte)'X', (byte)'L'])) return "JPEG XL";
        if (data.StartsWith((ReadOnlySpan<byte>)[0, 0, 1, 0])) return "ICO";
        if (data.Length >= 3 && data[0] == 'P' && data[1] is >= (byte)'1' and <= (byte)'7' && data[2] is (byte)'\n' or (byte)' ' or (byte)'\r' or (byte)'\t') return "PNM";
        return null;
    }
}

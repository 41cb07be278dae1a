using System.Buffers.Binary;

namespace LatentDiffusion.Pipeline.Imaging;

// The size and colour type from a PNG's IHDR chunk, read by hand. Skia gives up on a PNG whose
// header is all there is (no IDAT yet), but such a file's size must still meet the pixel limit, so
// that the refusal names the size rather than calling a 100000×100000 claim merely truncated.
internal static class PngHeader
{
    private const int IhdrEnd = 8 + 8 + 13 + 4; // signature, length and type, IHDR data, CRC

    /// <summary>Width, height and channels in the file, or null when the data does not start with a well-formed IHDR (its CRC checked).</summary>
    internal static ImageInfo? Read(ReadOnlySpan<byte> data)
    {
        if (data.Length < IhdrEnd || !data.StartsWith(PngChunkWriter.Signature)) return null;
        if (BinaryPrimitives.ReadUInt32BigEndian(data[8..]) != 13 || !data.Slice(12, 4).SequenceEqual("IHDR"u8)) return null;
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(data[29..]);
        if (stored != Crc32.Finish(Crc32.Update(Crc32.Start, data.Slice(12, 4 + 13)))) return null;
        uint width = BinaryPrimitives.ReadUInt32BigEndian(data[16..]), height = BinaryPrimitives.ReadUInt32BigEndian(data[20..]);
        if (width > int.MaxValue || height > int.MaxValue) return null;
        return new ImageInfo((int)width, (int)height, Channels(data[25]));
    }

    /// <summary>Whether the data holds a whole IHDR chunk whose CRC does not match (libpng refuses it as incomplete input).</summary>
    internal static bool HasBadCrc(ReadOnlySpan<byte> data) =>
        data.Length >= IhdrEnd && data.StartsWith(PngChunkWriter.Signature) && data.Slice(12, 4).SequenceEqual("IHDR"u8)
        && BinaryPrimitives.ReadUInt32BigEndian(data[8..]) == 13
        && BinaryPrimitives.ReadUInt32BigEndian(data[29..]) != Crc32.Finish(Crc32.Update(Crc32.Start, data.Slice(12, 4 + 13)));

    /// <summary>Samples per pixel of a PNG colour type (a palette counts as RGB: it decodes to RGB).</summary>
    private static int Channels(byte colorType) => colorType switch { 0 => 1, 4 => 2, 6 => 4, _ => 3 };
}

using System.Buffers.Binary;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>Adds an EXIF APP1 segment holding only an orientation tag to a JPEG, as a phone camera writes it.</summary>
internal static class ExifTestFile
{
    public static byte[] WithOrientation(byte[] jpeg, int orientation)
    {
        var app1 = new byte[2 + 2 + 6 + 8 + 2 + 12 + 4];
        app1[0] = 0xFF;
        app1[1] = 0xE1;
        BinaryPrimitives.WriteUInt16BigEndian(app1.AsSpan(2), (ushort)(app1.Length - 2));
        "Exif\0\0"u8.CopyTo(app1.AsSpan(4));
        var tiff = app1.AsSpan(10);
        "MM\0*"u8.CopyTo(tiff); // big-endian TIFF header
        BinaryPrimitives.WriteUInt32BigEndian(tiff[4..], 8); // the first IFD follows the header
        BinaryPrimitives.WriteUInt16BigEndian(tiff[8..], 1); // one entry:
        BinaryPrimitives.WriteUInt16BigEndian(tiff[10..], 0x0112); // Orientation
        BinaryPrimitives.WriteUInt16BigEndian(tiff[12..], 3); // SHORT
        BinaryPrimitives.WriteUInt32BigEndian(tiff[14..], 1); // one value
        BinaryPrimitives.WriteUInt16BigEndian(tiff[18..], (ushort)orientation);
        // then 2 padding bytes and a zero next-IFD offset

        // After SOI and the JFIF APP0 segment, where cameras put it.
        int at = 2;
        if (jpeg[2] == 0xFF && jpeg[3] == 0xE0) at += 2 + BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(4));
        return [.. jpeg.AsSpan(0, at), .. app1, .. jpeg.AsSpan(at)];
    }
}

using System.Buffers.Binary;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Writes a lossless WebP (VP8L) by hand: no transforms, no colour cache, and every channel coded with
/// a flat prefix code of 8-bit codes, so each pixel is stored as its four bytes. Large, but exact and
/// independent of any encoder; see the WebP lossless bitstream specification (RFC 9649).
/// </summary>
internal static class WebpTestFile
{
    public static byte[] Write(int width, int height, byte[] rgba)
    {
        var w = new BitWriter();
        w.Write(0x2F, 8); // VP8L signature
        w.Write(width - 1, 14);
        w.Write(height - 1, 14);
        w.Write(1, 1); // alpha is used
        w.Write(0, 3); // version
        w.Write(0, 1); // no transform
        w.Write(0, 1); // no colour cache
        w.Write(0, 1); // no meta prefix codes
        FlatCode(w, 256 + 24); // green and length prefixes: only the 256 literals are used
        FlatCode(w, 256); // red
        FlatCode(w, 256); // blue
        FlatCode(w, 256); // alpha
        w.Write(1, 1); // distance: a simple code with one 1-bit symbol, 0 (never read)
        w.Write(0, 1);
        w.Write(0, 1);
        w.Write(0, 1);
        for (int i = 0; i < rgba.Length; i += 4)
            foreach (int channel in (ReadOnlySpan<int>)[1, 0, 2, 3]) Symbol(w, rgba[i + channel]);
        var vp8l = w.ToArray();

        int padded = vp8l.Length + (vp8l.Length & 1);
        var file = new byte[12 + 8 + padded];
        "RIFF"u8.CopyTo(file);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(4), file.Length - 8);
        "WEBPVP8L"u8.CopyTo(file.AsSpan(8));
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(16), vp8l.Length);
        vp8l.CopyTo(file, 20);
        return file;
    }

    // A normal prefix code in which the first 256 symbols have 8-bit codes and the rest none. Its code
    // lengths are themselves coded with a two-symbol code: 1 bit, "0" for length 0 and "1" for length 8.
    private static void FlatCode(BitWriter w, int symbols)
    {
        w.Write(0, 1); // normal (not simple) code
        w.Write(12 - 4, 4); // 12 code-length code lengths, in the order 17 18 0 1 2 3 4 5 16 6 7 8
        foreach (int length in (ReadOnlySpan<int>)[0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]) w.Write(length, 3);
        w.Write(0, 1); // max_symbol: all symbols
        for (int s = 0; s < symbols; s++) w.Write(s < 256 ? 1 : 0, 1);
    }

    // Canonical 8-bit codes equal the symbol; prefix codes are read most significant bit first.
    private static void Symbol(BitWriter w, int value)
    {
        for (int bit = 7; bit >= 0; bit--) w.Write((value >> bit) & 1, 1);
    }

    private sealed class BitWriter
    {
        private readonly List<byte> bytes = [];
        private int buffer, count;

        // Least significant bit first, as VP8L packs its fields.
        public void Write(int value, int bits)
        {
            for (int i = 0; i < bits; i++)
            {
                buffer |= ((value >> i) & 1) << count;
                if (++count == 8)
                {
                    bytes.Add((byte)buffer);
                    buffer = count = 0;
                }
            }
        }

        public byte[] ToArray() => count == 0 ? [.. bytes] : [.. bytes, (byte)buffer];
    }
}

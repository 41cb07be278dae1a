namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Writes a GIF by hand, so that the decoder is checked against bytes no decoder produced. The LZW
/// stream is "uncompressed": every pixel is a literal 9-bit code and a clear code comes before the
/// table would grow, which every decoder reads and no encoder library is needed for.
/// </summary>
internal static class GifTestFile
{
    public static byte[] Write(int width, int height, byte[] indices, (byte R, byte G, byte B)[] palette)
    {
        var gif = new List<byte>();
        gif.AddRange("GIF89a"u8.ToArray());
        AddUInt16(gif, width);
        AddUInt16(gif, height);
        gif.AddRange([0xF7, 0, 0]); // global colour table of 256 entries, background 0, square pixels
        for (int i = 0; i < 256; i++)
        {
            var c = i < palette.Length ? palette[i] : default;
            gif.AddRange([c.R, c.G, c.B]);
        }
        gif.Add(0x2C); // image descriptor: the whole screen, not interlaced, no local table
        AddUInt16(gif, 0);
        AddUInt16(gif, 0);
        AddUInt16(gif, width);
        AddUInt16(gif, height);
        gif.Add(0);
        gif.Add(8); // LZW minimum code size: codes start at 9 bits
        var lzw = Lzw(indices);
        for (int i = 0; i < lzw.Length; i += 255)
        {
            int n = Math.Min(255, lzw.Length - i);
            gif.Add((byte)n);
            gif.AddRange(lzw.AsSpan(i, n).ToArray());
        }
        gif.Add(0);
        gif.Add(0x3B);
        return [.. gif];
    }

    private static byte[] Lzw(byte[] indices)
    {
        const int clear = 256, end = 257;
        var bits = new List<byte>();
        int buffer = 0, count = 0;
        void Emit(int code)
        {
            buffer |= code << count;
            for (count += 9; count >= 8; count -= 8, buffer >>= 8) bits.Add((byte)buffer);
        }
        for (int i = 0; i < indices.Length; i++)
        {
            // Each code after the first adds a table entry; clearing every 200 keeps codes at 9 bits.
            if (i % 200 == 0) Emit(clear);
            Emit(indices[i]);
        }
        Emit(end);
        if (count > 0) bits.Add((byte)buffer);
        return [.. bits];
    }

    private static void AddUInt16(List<byte> bytes, int value)
    {
        bytes.Add((byte)value);
        bytes.Add((byte)(value >> 8));
    }
}

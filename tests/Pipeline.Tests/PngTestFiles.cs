using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// The tests' own PNG and BMP tools, written apart from the library so that a bug in the encoder
/// cannot hide itself: a chunk parser with a bit-by-bit CRC, a chunk writer for hand-made PNGs,
/// and a BMP writer.
/// </summary>
internal static class PngTestFiles
{
    public static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public sealed record Chunk(string Type, byte[] Data, uint StoredCrc, uint ComputedCrc);

    public static uint BitwiseCrc(IEnumerable<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }

    /// <summary>Every chunk after the signature, to the end of the data.</summary>
    public static List<Chunk> Chunks(byte[] png)
    {
        Assert.Equal(Signature, png[..8]);
        var chunks = new List<Chunk>();
        int offset = 8;
        while (offset < png.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            var type = Encoding.ASCII.GetString(png, offset + 4, 4);
            var data = png.AsSpan(offset + 8, length).ToArray();
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset + 8 + length));
            chunks.Add(new Chunk(type, data, stored, BitwiseCrc(png.Skip(offset + 4).Take(4 + length))));
            offset += 12 + length;
        }
        return chunks;
    }

    public static byte[] ChunkBytes(string type, byte[] data)
    {
        var typeAndData = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        var result = new byte[12 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(result, data.Length);
        typeAndData.CopyTo(result, 4);
        BinaryPrimitives.WriteUInt32BigEndian(result.AsSpan(8 + data.Length), BitwiseCrc(typeAndData));
        return result;
    }

    public static byte[] Header(int width, int height, byte bitDepth, byte colorType)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = bitDepth;
        ihdr[9] = colorType;
        return ihdr;
    }

    public static byte[] Zlib(byte[] data)
    {
        using var memory = new MemoryStream();
        using (var z = new ZLibStream(memory, CompressionLevel.Fastest)) z.Write(data);
        return memory.ToArray();
    }

    /// <summary>A PNG from raw scanlines (each starting with its filter byte), built by hand.</summary>
    public static byte[] HandMadePng(int width, int height, byte bitDepth, byte colorType, byte[] scanlines, params (string Type, byte[] Data)[] extra) =>
    [
        .. Signature,
        .. ChunkBytes("IHDR", Header(width, height, bitDepth, colorType)),
        .. extra.SelectMany(c => ChunkBytes(c.Type, c.Data)),
        .. ChunkBytes("IDAT", Zlib(scanlines)),
        .. ChunkBytes("IEND", []),
    ];

    /// <summary>A 24-bit bottom-up BMP of interleaved RGB pixels.</summary>
    public static byte[] Bmp(int width, int height, byte[] rgb)
    {
        int stride = (width * 3 + 3) & ~3;
        var bmp = new byte[54 + stride * height];
        bmp[0] = (byte)'B';
        bmp[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(2), bmp.Length);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(28), 24);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(34), stride * height);
        for (int y = 0; y < height; y++)
        {
            int row = 54 + (height - 1 - y) * stride;
            for (int x = 0; x < width; x++)
            {
                int s = (y * width + x) * 3;
                bmp[row + x * 3] = rgb[s + 2];
                bmp[row + x * 3 + 1] = rgb[s + 1];
                bmp[row + x * 3 + 2] = rgb[s];
            }
        }
        return bmp;
    }

    /// <summary>Deterministic bytes that exercise every filter (gradients plus noise).</summary>
    public static byte[] Pattern(int width, int height, int channels, int seed = 1)
    {
        var random = new Random(seed);
        var pixels = new byte[width * height * channels];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++)
                    pixels[(y * width + x) * channels + c] = (byte)(x * 7 + y * 3 * (c + 1) + random.Next(8));
        return pixels;
    }

    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "pipeline", "images", name);
}

/// <summary>A fresh temporary folder per test, removed afterwards.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("ldm-img-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

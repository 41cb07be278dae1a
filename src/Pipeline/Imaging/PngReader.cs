using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>One PNG chunk: its four-letter type and its data.</summary>
public sealed record PngChunk(string Type, byte[] Data);

/// <summary>Parses the chunk structure of a PNG file and its text (tEXt, zTXt, iTXt); pixels are decoded by <see cref="ImageDecoder"/>.</summary>
public static class PngReader
{
    // A text chunk bigger than this after inflation is refused rather than allocated (a zip bomb).
    private const int MaxTextBytes = 16 << 20;

    /// <summary>The chunks up to and including IEND, each CRC checked.</summary>
    /// <exception cref="InvalidDataException">when the data is not a well-formed PNG.</exception>
    public static IReadOnlyList<PngChunk> ReadChunks(ReadOnlySpan<byte> png)
    {
        if (!png.StartsWith(PngChunkWriter.Signature)) throw new InvalidDataException("not a PNG file (bad signature)");
        var chunks = new List<PngChunk>();
        int offset = PngChunkWriter.Signature.Length;
        while (true)
        {
            if (png.Length - offset < 12) throw new InvalidDataException($"truncated PNG: chunk header expected at byte {offset}");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(png[offset..]);
            var typeBytes = png.Slice(offset + 4, 4);
            if (!IsChunkType(typeBytes)) throw new InvalidDataException($"corrupt PNG: invalid chunk type at byte {offset + 4}");
            var type = Encoding.ASCII.GetString(typeBytes);
            if (length > int.MaxValue || length > png.Length - offset - 12)
                throw new InvalidDataException($"truncated PNG: chunk {type} at byte {offset} claims {length} bytes");
            var data = png.Slice(offset + 8, (int)length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(png[(offset + 8 + (int)length)..]);
            uint actual = Crc32.Finish(Crc32.Update(Crc32.Update(Crc32.Start, typeBytes), data));
            if (stored != actual) throw new InvalidDataException($"corrupt PNG: CRC mismatch in chunk {type} at byte {offset}");
            chunks.Add(new PngChunk(type, data.ToArray()));
            offset += 12 + (int)length;
            if (type == "IEND") return chunks;
        }
    }

    /// <summary>The text entries of a PNG file, in file order.</summary>
    /// <exception cref="ImageLoadException">when the file cannot be read or is not a well-formed PNG.</exception>
    public static IReadOnlyList<PngText> ReadText(string path)
    {
        byte[] bytes;
        try
        {
            bytes = BoundedFile.ReadAllBytes(path, BoundedFile.ImageLimit, "PNG image");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageLoadException(path, e is FileNotFoundException or DirectoryNotFoundException ? "file not found" : $"cannot read the file ({e.Message})", e);
        }
        try
        {
            return ReadText(bytes);
        }
        catch (InvalidDataException e)
        {
            throw new ImageLoadException(path, e.Message, e);
        }
    }

    /// <exception cref="InvalidDataException">when the data is not a well-formed PNG or a text chunk is malformed.</exception>
    public static IReadOnlyList<PngText> ReadText(ReadOnlySpan<byte> png)
    {
        var texts = new List<PngText>();
        foreach (var chunk in ReadChunks(png))
        {
            var text = chunk.Type switch
            {
                "tEXt" => ParseText(chunk.Data),
                "zTXt" => ParseCompressedText(chunk.Data),
                "iTXt" => ParseInternationalText(chunk.Data),
                _ => null,
            };
            if (text is not null) texts.Add(text);
        }
        return texts;
    }

    /// <summary>The text stored under <paramref name="keyword"/>, or null.</summary>
    public static string? Find(this IReadOnlyList<PngText> texts, string keyword) =>
        texts.FirstOrDefault(t => t.Keyword == keyword)?.Text;

    private static PngText ParseText(byte[] data)
    {
        int nul = KeywordEnd(data, "tEXt");
        return new PngText(Encoding.Latin1.GetString(data, 0, nul), Encoding.Latin1.GetString(data, nul + 1, data.Length - nul - 1));
    }

    private static PngText ParseCompressedText(byte[] data)
    {
        int nul = KeywordEnd(data, "zTXt");
        if (nul + 1 >= data.Length || data[nul + 1] != 0) throw new InvalidDataException("corrupt PNG: zTXt chunk with unknown compression");
        var text = Inflate(data.AsSpan(nul + 2), "zTXt");
        return new PngText(Encoding.Latin1.GetString(data, 0, nul), Encoding.Latin1.GetString(text));
    }

    private static PngText ParseInternationalText(byte[] data)
    {
        int nul = KeywordEnd(data, "iTXt");
        var keyword = Encoding.Latin1.GetString(data, 0, nul);
        int p = nul + 1;
        if (p + 2 > data.Length) throw new InvalidDataException("corrupt PNG: truncated iTXt chunk");
        bool compressed = data[p] == 1;
        if (compressed && data[p + 1] != 0) throw new InvalidDataException("corrupt PNG: iTXt chunk with unknown compression");
        p += 2;
        p = SkipNulTerminated(data, p); // language tag
        p = SkipNulTerminated(data, p); // translated keyword
        var body = data.AsSpan(p);
        var text = compressed ? Inflate(body, "iTXt") : body.ToArray();
        return new PngText(keyword, Encoding.UTF8.GetString(text));
    }

    private static int KeywordEnd(byte[] data, string type)
    {
        int nul = Array.IndexOf(data, (byte)0);
        if (nul <= 0) throw new InvalidDataException($"corrupt PNG: {type} chunk without a keyword");
        return nul;
    }

    private static int SkipNulTerminated(byte[] data, int start)
    {
        int nul = Array.IndexOf(data, (byte)0, start);
        if (nul < 0) throw new InvalidDataException("corrupt PNG: truncated iTXt chunk");
        return nul + 1;
    }

    private static byte[] Inflate(ReadOnlySpan<byte> compressed, string type)
    {
        using var output = new MemoryStream();
        try
        {
            using var zlib = new ZLibStream(new MemoryStream(compressed.ToArray()), CompressionMode.Decompress);
            var buffer = new byte[81920];
            int n;
            while ((n = zlib.Read(buffer)) > 0 && output.Length <= MaxTextBytes) output.Write(buffer, 0, n);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new InvalidDataException($"corrupt PNG: cannot inflate {type} text ({e.Message})", e);
        }
        if (output.Length > MaxTextBytes) throw new InvalidDataException($"corrupt PNG: {type} text inflates beyond {MaxTextBytes} bytes");
        return output.ToArray();
    }

    private static bool IsChunkType(ReadOnlySpan<byte> type)
    {
        foreach (var b in type)
            if (b is not (>= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z')) return false;
        return true;
    }
}

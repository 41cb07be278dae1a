using System.Buffers.Binary;
using System.IO.Compression;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// Reads the IDX format of (Fashion-)MNIST: a big-endian header (0, 0, type code, rank, then
/// rank sizes as uint32) followed by the elements. Only unsigned bytes (type 0x08) are used here.
/// Gzip-compressed files (*.gz) are decompressed on the fly.
/// </summary>
public sealed record IdxFile(int[] Shape, byte[] Data)
{
    public static IdxFile Read(string path)
    {
        byte[] bytes;
        try
        {
            using var file = File.OpenRead(path);
            using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            bytes = memory.ToArray();
        }
        catch (FileNotFoundException)
        {
            throw new DatasetException($"{path}: file not found");
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException($"{path}: not a valid gzip file ({e.Message})");
        }
        return Parse(path, bytes);
    }

    public static IdxFile Parse(string path, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 4 || bytes[0] != 0 || bytes[1] != 0)
            throw new DatasetException($"{path}: not an IDX file (bad magic number)");
        if (bytes[2] != 0x08)
            throw new DatasetException($"{path}: IDX element type 0x{bytes[2]:x2} is not supported (expected unsigned bytes, 0x08)");
        int rank = bytes[3];
        if (rank is < 1 or > 4 || bytes.Length < 4 + 4 * rank)
            throw new DatasetException($"{path}: IDX header is truncated or has rank {rank}");
        var shape = new int[rank];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            var size = BinaryPrimitives.ReadUInt32BigEndian(bytes.Slice(4 + 4 * i));
            if (size > int.MaxValue) throw new DatasetException($"{path}: IDX dimension {i} is absurd ({size})");
            shape[i] = (int)size;
            count *= size;
        }
        var offset = 4 + 4 * rank;
        if (bytes.Length - offset != count)
            throw new DatasetException($"{path}: IDX header promises {count} elements but the file holds {bytes.Length - offset} (truncated?)");
        return new IdxFile(shape, bytes[offset..].ToArray());
    }
}

/// <summary>A dataset is missing or unreadable; the message names the file and the problem.</summary>
public sealed class DatasetException(string message) : Exception(message);

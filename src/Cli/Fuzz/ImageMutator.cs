using System.Buffers.Binary;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>
/// Mutations of image bytes: any byte mutation, header size fields, and for PNG a chunk's length, type or
/// data changed with its CRC recomputed, so that the mutation reaches the decoder past the checksum.
/// </summary>
public static class ImageMutator
{
    public static Mutated Mutate(byte[] data, FuzzRandom random)
    {
        var isPng = data.Length > 8 && data[0] == 0x89 && data[1] == (byte)'P';
        return (isPng ? random.Next(4) : random.Next(2)) switch
        {
            0 => BinaryMutator.Mutate(data, random),
            1 => BinaryMutator.SizeField((byte[])data.Clone(), random, 32),
            _ => PngChunk(data, random),
        };
    }

    private static Mutated PngChunk(byte[] data, FuzzRandom random)
    {
        var chunks = new List<(int Offset, int Length, string Type)>();
        for (var at = 8; at + 12 <= data.Length;)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
            chunks.Add((at, length, System.Text.Encoding.ASCII.GetString(data, at + 4, 4)));
            at += 12 + length;
        }
        var (offset, chunkLength, type) = random.Pick(chunks);
        var d = (byte[])data.Clone();
        string description;
        switch (random.Next(3))
        {
            case 0:
            {
                var value = random.Pick<uint>([0, 1, (uint)chunkLength + 1, (uint)Math.Max(0, chunkLength - 1), 0x7FFFFFFF, 0xFFFFFFFF]);
                BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(offset), value);
                return new(d, $"PNG {type} chunk length {chunkLength} set to {value}", type);
            }
            case 1 when chunkLength > 0:
            {
                var at = offset + 8 + random.Next(chunkLength);
                d[at] = type == "IHDR" ? random.Pick<byte>([0, 0xFF, 0x7F, 1, 3, 16]) : random.NextByte();
                description = $"PNG {type} byte {at - offset - 8} set to 0x{d[at]:X2}";
                break;
            }
            default:
            {
                var newType = random.Pick(["IHDR", "IEND", "PLTE", "tRNS", "acTL", "fcTL", "zzzz", "IDAT"]);
                System.Text.Encoding.ASCII.GetBytes(newType).CopyTo(d, offset + 4);
                description = $"PNG {type} chunk renamed {newType}";
                break;
            }
        }
        // Recompute the CRC over type and data so that the decoder sees the mutation, not a checksum error.
        var crcAt = offset + 8 + chunkLength;
        if (crcAt + 4 <= d.Length) BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(crcAt), Crc(d.AsSpan(offset + 4, 4 + chunkLength)));
        return new(d, description + " (CRC fixed)", type);
    }

    private static uint Crc(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }
}

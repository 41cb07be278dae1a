using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>
/// Mutations of a safetensors file (8-byte little-endian header length, JSON header, data): the length field
/// off by one, zero or huge; a tensor's dtype, shape or data_offsets replaced; any header field mutated as
/// JSON; non-UTF-8 bytes in the header; the data cut or extended, or bytes flipped.
/// </summary>
public static class SafeTensorsMutator
{
    private static readonly string[] DTypes = ["\"F64\"", "\"I4\"", "\"Q8\"", "\"\"", "\"f32\"", "\"BOOL\"", "\"F8_E4M3\"", "\"U64\"", "7", "null", "[\"F32\"]"];
    private static readonly string[] Shapes = ["[-1]", "[10000000000]", "[]", "[2, 3, 4, 5]", "\"x\"", "[1.5]", "[0]", "[4294967297, 4294967297]", "null", "[9223372036854775807, 2]"];
    private static readonly string[] Offsets = ["[0]", "[5, 2]", "[0, 1e20]", "[-1, 3]", "[0, 0]", "[0, 18446744073709551615]", "[1, 2, 3]", "\"0\"", "null", "[0.5, 4]"];

    /// <summary>A mutation of <paramref name="file"/>; <paramref name="dataMutations"/> allows changing tensor bytes
    /// (not for a model's weights, where flipped bytes are a valid but meaningless file).</summary>
    public static Mutated Mutate(byte[] file, FuzzRandom random, bool dataMutations = true)
    {
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = file.AsSpan(8, (int)headerLength).ToArray();
        var data = file[(8 + (int)headerLength)..];
        switch (random.Next(dataMutations ? 8 : 6))
        {
            case 0:
            {
                var lengths = new[] { headerLength - 1, headerLength + 1, 0, 7, file.Length, 1L << 40, -1 };
                var length = random.Pick(lengths);
                var copy = (byte[])file.Clone();
                BinaryPrimitives.WriteInt64LittleEndian(copy, length);
                return new(copy, $"header length {headerLength} set to {(ulong)length}", "header");
            }
            case 1: return Entry(header, data, random, "dtype", DTypes);
            case 2: return Entry(header, data, random, "shape", Shapes);
            case 3: return Entry(header, data, random, "data_offsets", Offsets);
            case 4:
            {
                var m = JsonMutator.Mutate(header, random);
                return new(Assemble(m.Data, data), "header: " + m.Description, m.Field);
            }
            case 5:
            {
                var at = random.Next(1, header.Length - 1);
                var mutated = header.ToArray();
                mutated[at] = random.Pick<byte>([0xFF, 0xC0, 0x80, 0xFE]);
                return new(Assemble(mutated, data), $"header byte {at} set to non-UTF-8 0x{mutated[at]:X2}", "header");
            }
            case 6:
            {
                var keep = data.Length == 0 ? 0 : random.Next(data.Length);
                return new(Assemble(header, data[..keep]), $"data cut to {keep} of {data.Length} bytes", "data");
            }
            default:
            {
                var m = BinaryMutator.Mutate(data, random);
                return new(Assemble(header, m.Data), "data: " + m.Description, "data");
            }
        }
    }

    // One tensor's dtype, shape or data_offsets replaced by a bad value.
    private static Mutated Entry(byte[] header, byte[] data, FuzzRandom random, string field, string[] values)
    {
        var root = JsonNode.Parse(header)!.AsObject();
        var names = root.Select(p => p.Key).Where(k => k != "__metadata__").ToList();
        if (names.Count == 0) return new(Assemble(header, data), "unchanged (no tensors)");
        var name = random.Pick(names);
        var value = random.Pick(values);
        root[name]![field] = JsonNode.Parse(value);
        return new(Assemble(Encoding.UTF8.GetBytes(root.ToJsonString()), data), $"{name}.{field} = {value}", field);
    }

    public static byte[] Assemble(byte[] header, byte[] data)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    /// <summary>A small valid file: F32 [2,3], I64 [4], BF16 [2], F16 scalar, U8 [0], with metadata.</summary>
    public static byte[] Sample()
    {
        var header = """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"I64","shape":[4],"data_offsets":[24,56]},"c":{"dtype":"BF16","shape":[2],"data_offsets":[56,60]},"d":{"dtype":"F16","shape":[],"data_offsets":[60,62]},"e":{"dtype":"U8","shape":[0],"data_offsets":[62,62]}}"""u8.ToArray();
        var data = new byte[62];
        for (var i = 0; i < 6; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4 * i), i - 2.5f);
        for (var i = 0; i < 4; i++) BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(24 + 8 * i), i * 1000 - 1);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(56), 0x3F80); // bf16 1.0
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(58), 0xC000); // bf16 -2.0
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(60), 0x3C00); // f16 1.0
        return Assemble(header, data);
    }
}

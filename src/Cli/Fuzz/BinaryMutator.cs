using System.Buffers.Binary;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>A mutated file and a one-line description of what was done to it (for the reproduction).</summary>
public sealed record Mutated(byte[] Data, string Description, string? Field = null);

/// <summary>Byte-level mutations of any file: flips, overwrites, truncation, extension, insertion, deletion,
/// and 32-bit "size fields" near the start set to extreme values.</summary>
public static class BinaryMutator
{
    private static readonly uint[] ExtremeSizes = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000];

    public static Mutated Mutate(byte[] data, FuzzRandom random)
    {
        var d = (byte[])data.Clone();
        switch (d.Length == 0 ? 3 : random.Next(7))
        {
            case 0:
            {
                var flips = random.Next(1, 9);
                for (var i = 0; i < flips; i++) d[random.Next(d.Length)] ^= (byte)(1 << random.Next(8));
                return new(d, $"{flips} bit flips");
            }
            case 1:
            {
                var at = random.Next(d.Length);
                var value = random.Pick<byte>([0x00, 0xFF, 0x7F, 0x80, random.NextByte()]);
                d[at] = value;
                return new(d, $"byte {at} set to 0x{value:X2}");
            }
            case 2:
            {
                var length = random.Next(d.Length);
                return new(d[..length], $"truncated to {length} of {d.Length} bytes");
            }
            case 3:
            {
                var extra = random.Bytes(random.Next(1, 64));
                return new([.. d, .. extra], $"{extra.Length} random bytes appended");
            }
            case 4:
            {
                var at = random.Next(d.Length + 1);
                var extra = random.Bytes(random.Next(1, 16));
                return new([.. d[..at], .. extra, .. d[at..]], $"{extra.Length} random bytes inserted at {at}");
            }
            case 5:
            {
                var at = random.Next(d.Length);
                var count = Math.Min(d.Length - at, random.Next(1, 16));
                return new([.. d[..at], .. d[(at + count)..]], $"{count} bytes deleted at {at}");
            }
            default:
                return SizeField(d, random, Math.Min(d.Length, 64));
        }
    }

    /// <summary>Overwrites a 32-bit value (either byte order) within the first <paramref name="within"/> bytes with an extreme size.</summary>
    public static Mutated SizeField(byte[] d, FuzzRandom random, int within)
    {
        if (d.Length < 4) return new(d, "unchanged (too short for a size field)");
        var at = random.Next(Math.Max(1, Math.Min(within, d.Length) - 3));
        var value = random.Pick(ExtremeSizes);
        var bigEndian = random.Chance(0.5);
        if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(at), value);
        else BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(at), value);
        return new(d, $"32-bit {(bigEndian ? "big" : "little")}-endian field at {at} set to {value}");
    }
}

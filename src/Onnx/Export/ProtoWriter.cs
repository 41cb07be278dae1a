using System.Buffers.Binary;
using System.Text;

namespace LatentDiffusion.Onnx.Export;

/// <summary>
/// Protocol Buffers' wire format, the little of it onnx.proto needs: varints, 64-bit integers, floats, strings, bytes
/// and nested messages (written to their own buffer, then length-prefixed). Field numbers are onnx.proto's.
/// </summary>
internal sealed class ProtoWriter
{
    private const int Varint = 0, Fixed32 = 5, LengthDelimited = 2;
    private readonly MemoryStream stream = new();

    public byte[] ToArray() => stream.ToArray();

    public long Length => stream.Length;

    public ProtoWriter Int(int field, long value)
    {
        Tag(field, Varint);
        RawVarint((ulong)value);
        return this;
    }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, Fixed32);
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        stream.Write(bytes);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, LengthDelimited);
        RawVarint((ulong)value.Length);
        stream.Write(value);
        return this;
    }

    /// <summary>Repeated int64 as one packed field (proto3's default encoding for repeated scalars).</summary>
    public ProtoWriter PackedInts(int field, IEnumerable<long> values)
    {
        var packed = new ProtoWriter();
        foreach (var v in values) packed.RawVarint((ulong)v);
        return Bytes(field, packed.stream.GetBuffer().AsSpan(0, (int)packed.stream.Length));
    }

    public ProtoWriter Message(int field, Action<ProtoWriter> write)
    {
        var nested = new ProtoWriter();
        write(nested);
        return Bytes(field, nested.stream.GetBuffer().AsSpan(0, (int)nested.stream.Length));
    }

    private void Tag(int field, int wireType) => RawVarint(((ulong)field << 3) | (uint)wireType);

    private void RawVarint(ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        stream.WriteByte((byte)value);
    }
}

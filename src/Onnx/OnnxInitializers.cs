using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx;

/// <summary>
/// Reads named weights (initializers) out of an ONNX file without loading the rest: a forward-only walk over onnx.proto's
/// ModelProto.graph (field 7) → GraphProto.initializer (field 5) → TensorProto (dims 1, data_type 2, float_data 4, name 8,
/// raw_data 9, external_data 13, data_location 14), seeking past everything else, so that a 500 MB graph costs a few
/// reads. Used where the engine needs a weight outside the graph's computation (the final layer norm that clip skip puts
/// after an earlier hidden state). Float32 and float16 weights, inline or in external data; anything malformed is one line.
/// </summary>
internal static class OnnxInitializers
{
    private const int Float = 1, Float16 = 10;

    /// <summary>The initializers among <paramref name="names"/> that <paramref name="path"/> holds, as float32 tensors (the caller disposes them).</summary>
    public static Dictionary<string, Tensor> Read(string path, IReadOnlyCollection<string> names)
    {
        var found = new Dictionary<string, Tensor>();
        try
        {
            using var file = File.OpenRead(path);
            var model = new Reader(file, path);
            while (model.More(file.Length))
            {
                var (field, wire) = model.Key();
                if (field != 7 || wire != 2) { model.Skip(wire); continue; }
                var graphEnd = model.End();
                while (model.More(graphEnd))
                {
                    var (f, w) = model.Key();
                    if (f != 5 || w != 2) { model.Skip(w); continue; }
                    var tensorEnd = model.End();
                    if (ReadTensor(model, tensorEnd, names, path) is { } t) found[t.Name] = t.Value;
                    file.Position = tensorEnd;
                }
                break;
            }
            return found;
        }
        catch
        {
            foreach (var t in found.Values) t.Dispose();
            throw;
        }
    }

    private static (string Name, Tensor Value)? ReadTensor(Reader r, long end, IReadOnlyCollection<string> names, string path)
    {
        var dims = new List<long>();
        int dataType = 0;
        string? name = null;
        (long At, long Length)? data = null;
        bool packedFloats = false, external = false;
        var externalData = new Dictionary<string, string>();
        while (r.More(end))
        {
            var (field, wire) = r.Key();
            switch (field, wire)
            {
                case (1, 0): dims.Add((long)r.Varint()); break;
                case (1, 2):
                    var dimsEnd = r.End();
                    while (r.More(dimsEnd)) dims.Add((long)r.Varint());
                    break;
                case (2, 0): dataType = (int)r.Varint(); break;
                case (4, 2): packedFloats = true; data = r.Span(); break;
                case (8, 2): name = r.Text(); break;
                case (9, 2): data = r.Span(); break;
                case (13, 2):
                    var entryEnd = r.End();
                    string key = "", value = "";
                    while (r.More(entryEnd))
                    {
                        var (f, w) = r.Key();
                        if (f == 1 && w == 2) key = r.Text();
                        else if (f == 2 && w == 2) value = r.Text();
                        else r.Skip(w);
                    }
                    externalData[key] = value;
                    break;
                case (14, 0): external = r.Varint() == 1; break;
                default: r.Skip(wire); break;
            }
        }
        if (name is null || !names.Contains(name)) return null;
        if (dataType is not (Float or Float16) || (packedFloats && dataType != Float))
            throw new InvalidDataException($"{path}: initializer '{name}' has ONNX data type {dataType}; only float32 and float16 weights can be read");
        var elementSize = dataType == Float ? 4 : 2;
        var count = dims.Aggregate(1L, (a, d) => a * d);
        byte[] bytes;
        if (external)
        {
            var location = externalData.GetValueOrDefault("location") ?? throw new InvalidDataException($"{path}: initializer '{name}' is external without a location");
            var file = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, location);
            var offset = long.Parse(externalData.GetValueOrDefault("offset") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
            using var stream = File.OpenRead(file);
            if (offset < 0 || offset + count * elementSize > stream.Length)
                throw new InvalidDataException($"{path}: initializer '{name}' lies beyond the end of {location}");
            stream.Position = offset;
            bytes = new byte[count * elementSize];
            stream.ReadExactly(bytes);
        }
        else
        {
            if (data is not { } span || span.Length != count * elementSize)
                throw new InvalidDataException($"{path}: initializer '{name}' holds {data?.Length ?? 0} bytes for {count} elements of {elementSize} bytes");
            bytes = r.Bytes(span.At, (int)span.Length);
        }
        using var raw = Tensor.FromBytes(bytes, dataType == Float ? DType.Float32 : DType.Float16, [.. dims]);
        return (name, raw.To(DType.Float32));
    }

    // protobuf's wire format over a seekable stream, every length checked against the file
    private sealed class Reader(FileStream s, string path)
    {
        public long Position => s.Position;

        public bool More(long end) => s.Position < end;

        public (int Field, int Wire) Key()
        {
            var key = Varint();
            return ((int)(key >> 3), (int)(key & 7));
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                var b = s.ReadByte();
                if (b < 0) throw Truncated();
                value |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return value;
            }
            throw new InvalidDataException($"{path}: not an ONNX model (a malformed protobuf varint)");
        }

        /// <summary>The end of the length-delimited field that starts here.</summary>
        public long End()
        {
            var length = Varint();
            if (length > (ulong)(s.Length - s.Position)) throw Truncated();
            return s.Position + (long)length;
        }

        /// <summary>Where the length-delimited field that starts here lies; the stream moves past it.</summary>
        public (long At, long Length) Span()
        {
            var end = End();
            var at = s.Position;
            s.Position = end;
            return (at, end - at);
        }

        public string Text()
        {
            var (at, length) = Span();
            return System.Text.Encoding.UTF8.GetString(Bytes(at, (int)length));
        }

        public byte[] Bytes(long at, int length)
        {
            var back = s.Position;
            s.Position = at;
            var bytes = new byte[length];
            s.ReadExactly(bytes);
            s.Position = back;
            return bytes;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: s.Position += 8; break;
                case 2: s.Position = End(); break;
                case 5: s.Position += 4; break;
                default: throw new InvalidDataException($"{path}: not an ONNX model (protobuf wire type {wire})");
            }
            if (s.Position > s.Length) throw Truncated();
        }

        private InvalidDataException Truncated() => new($"{path}: the ONNX file is truncated");
    }
}

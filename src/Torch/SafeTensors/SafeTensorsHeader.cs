using System.Text.Json;

namespace LatentDiffusion.Torch.SafeTensors;

/// <summary>Where one tensor lives in a safetensors file; offsets are relative to the data section.</summary>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>Parses and validates the JSON header of a safetensors file.</summary>
internal static class SafeTensorsHeader
{
    /// <summary>Same bound as the reference implementation: a header over 100 MB is not a real file.</summary>
    internal const long MaxHeaderLength = 100L * 1024 * 1024;

    internal static string DTypeName(DType dtype) => dtype switch
    {
        DType.Float64 => "F64",
        DType.Float32 => "F32",
        DType.Float16 => "F16",
        DType.BFloat16 => "BF16",
        DType.Int64 => "I64",
        DType.Int32 => "I32",
        DType.Int16 => "I16",
        DType.Int8 => "I8",
        DType.UInt8 => "U8",
        DType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "no safetensors name"),
    };

    private static DType? ParseDType(string name) => name switch
    {
        "F64" => DType.Float64,
        "F32" => DType.Float32,
        "F16" => DType.Float16,
        "BF16" => DType.BFloat16,
        "I64" => DType.Int64,
        "I32" => DType.Int32,
        "I16" => DType.Int16,
        "I8" => DType.Int8,
        "U8" => DType.UInt8,
        "BOOL" => DType.Bool,
        _ => null,
    };

    /// <summary>Validates the header against a data section of <paramref name="dataLength"/> bytes.</summary>
    internal static (List<TensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(
        string path, ReadOnlySpan<byte> json, long dataLength)
    {
        // System.Text.Json would fail later with a generic transcoding error; the reference rejects it up front.
        if (!System.Text.Unicode.Utf8.IsValid(json))
            throw new SafeTensorsException(path, "header is not valid UTF-8 (not a safetensors file, or a corrupted one)");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new SafeTensorsException(path, $"header is not valid JSON ({e.Message})");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsException(path, "header is not a JSON object");

            var tensors = new List<TensorInfo>();
            var metadata = new Dictionary<string, string>();
            var seen = new HashSet<string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new SafeTensorsException(path, $"header names '{property.Name}' twice");
                if (property.Name == "__metadata__")
                    ReadMetadata(path, property.Value, metadata);
                else
                    tensors.Add(ReadTensor(path, property.Name, property.Value, dataLength));
            }
            CheckCoverage(path, tensors, dataLength);
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsException(path, "__metadata__ is not an object of strings");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new SafeTensorsException(path, $"__metadata__ value '{entry.Name}' is not a string");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static TensorInfo ReadTensor(string path, string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsException(path, $"tensor '{name}': entry is not an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new SafeTensorsException(path, $"tensor '{name}': missing dtype");
        var dtypeName = dtypeElement.GetString()!;
        var dtype = ParseDType(dtypeName)
            ?? throw new SafeTensorsException(path, $"tensor '{name}': unknown or unsupported dtype '{dtypeName}'");

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new SafeTensorsException(path, $"tensor '{name}': missing shape");
        var shape = new long[shapeElement.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var size) || size < 0)
                throw new SafeTensorsException(path, $"tensor '{name}': shape entries must be non-negative integers");
            shape[i++] = size;
            try { elements = checked(elements * size); }
            catch (OverflowException) { throw new SafeTensorsException(path, $"tensor '{name}': shape is absurdly large"); }
        }

        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw new SafeTensorsException(path, $"tensor '{name}': data_offsets must be [begin, end]");
        // TryGetInt64 throws (InvalidOperationException, naming no file) for a non-number: check the kind first (found by ldm fuzz).
        if (offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number
            || !offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end))
            throw new SafeTensorsException(path, $"tensor '{name}': data_offsets must be integers");
        if (begin < 0 || end < begin)
            throw new SafeTensorsException(path, $"tensor '{name}': data_offsets [{begin}, {end}] are not an increasing range");
        if (end > dataLength)
            throw new SafeTensorsException(path, $"tensor '{name}': data_offsets [{begin}, {end}] reach past the end of the file (data section is {dataLength} bytes; truncated file?)");

        long expected;
        try { expected = checked(elements * dtype.ElementSize()); }
        catch (OverflowException) { throw new SafeTensorsException(path, $"tensor '{name}': shape is absurdly large"); }
        if (expected != end - begin)
            throw new SafeTensorsException(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtypeName} needs {expected} bytes but data_offsets give {end - begin}");

        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /// <summary>
    /// As the reference implementation validates (InvalidOffset, MetadataIncompleteBuffer): the tensors,
    /// in offset order, cover the data section exactly, each beginning where the previous one ends, and
    /// the last one ends at the end of the file. A header length that is off by a byte would otherwise
    /// parse (JSON allows the padding spaces to move) and shift every tensor by a byte.
    /// </summary>
    private static void CheckCoverage(string path, List<TensorInfo> tensors, long dataLength)
    {
        long end = 0;
        TensorInfo? previous = null;
        foreach (var t in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (t.Begin > end)
                throw new SafeTensorsException(path, previous is null
                    ? $"tensor '{t.Name}' begins at data offset {t.Begin}, leaving the first {t.Begin} bytes of the data section unused"
                    : $"a gap of {t.Begin - end} bytes lies between tensors '{previous.Name}' and '{t.Name}' in the data section");
            if (t.Begin < end)
                throw new SafeTensorsException(path, $"tensors '{previous!.Name}' and '{t.Name}' overlap in the data section");
            end = t.End;
            previous = t;
        }
        if (end != dataLength)
            throw new SafeTensorsException(path, $"the tensors cover {end} bytes but the data section holds {dataLength} (a wrong header length, or trailing bytes)");
    }
}

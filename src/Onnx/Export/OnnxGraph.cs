using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx.Export;

/// <summary>
/// An ONNX graph being written: inputs and outputs with named (dynamic) or fixed dimensions, operator nodes, and
/// initializers (weights). <see cref="Save"/> writes onnx.proto's ModelProto; weights go to one external-data file
/// beside the model when they would not fit the 2 GB protobuf limit (or when asked), as diffusers' export does.
/// </summary>
public sealed class OnnxGraph(string name) : IDisposable
{
    /// <summary>Initializers smaller than this stay inside the model even with external data: ONNX's shape inference reads
    /// shape and axis constants only from the model itself (PyTorch's exporter uses the same 1 KiB threshold).</summary>
    public const long InlineBelow = 1024;

    /// <summary>Protocol Buffers refuse messages of 2 GB and more: weights beyond this go to external data.</summary>
    public const long ProtobufLimit = 2L * 1024 * 1024 * 1024 - 64 * 1024 * 1024;

    private readonly List<(string Name, DType DType, object[] Dims)> inputs = [], outputs = [];
    private readonly List<(string Op, string[] Inputs, string[] Outputs, (string Name, object Value)[] Attributes)> nodes = [];
    private readonly List<(string Name, Tensor Value)> initializers = [];
    private readonly HashSet<string> names = [];
    private int counter;

    public string Name { get; } = name;

    /// <summary>A graph input; a dimension is a size (long) or the name of a dynamic axis (string).</summary>
    public string Input(string inputName, DType dtype, params object[] dims)
    {
        Claim(inputName);
        inputs.Add((inputName, dtype, dims));
        return inputName;
    }

    /// <summary>Declares <paramref name="value"/> (a node's output) as the graph output <paramref name="outputName"/>.</summary>
    public void Output(string value, string outputName, DType dtype, params object[] dims)
    {
        if (value != outputName) Node("Identity", [value], [outputName]);
        outputs.Add((outputName, dtype, dims));
    }

    /// <summary>
    /// A weight: the graph holds a second handle on it (no copy; a model's weights are written straight from its tensors
    /// when the graph is saved), so change no weight between here and <see cref="Save"/>.
    /// </summary>
    public string Initializer(string initializerName, Tensor value)
    {
        Claim(initializerName);
        initializers.Add((initializerName, value.Device == Device.CPU ? value.Contiguous() : value.To(Device.CPU).Contiguous()));
        return initializerName;
    }

    /// <summary>A constant weight under a fresh name.</summary>
    public string Constant(Tensor value, string hint = "const") => Initializer(Fresh(hint), value);

    /// <summary>An int64 vector constant (shapes, axes).</summary>
    public string Ints(params long[] values)
    {
        using var t = Tensor.From(values, values.Length);
        return Constant(t, "ints");
    }

    /// <summary>An int64 scalar constant (Range's bounds).</summary>
    public string Int64Scalar(long value)
    {
        using var t = Tensors.Scalar(value, DType.Int64);
        return Constant(t, "int");
    }

    /// <summary>A float scalar constant of <paramref name="dtype"/>.</summary>
    public string Scalar(double value, DType dtype = DType.Float32)
    {
        using var t = Tensors.Scalar(value, dtype);
        return Constant(t, "scalar");
    }

    /// <summary>One operator with one output, named after the operator; attributes: long, double, long[], double[], string.</summary>
    public string Op(string op, string[] operands, params (string Name, object Value)[] attributes) =>
        Node(op, operands, [Fresh(op)], attributes)[0];

    /// <summary>One operator with the given outputs.</summary>
    public string[] Node(string op, string[] operands, string[] results, params (string Name, object Value)[] attributes)
    {
        foreach (var r in results) Claim(r);
        nodes.Add((op, operands, results, attributes));
        return results;
    }

    public string Fresh(string hint)
    {
        string candidate;
        do candidate = $"/{hint}_{counter++}"; while (names.Contains(candidate));
        return candidate;
    }

    private void Claim(string value)
    {
        if (!names.Add(value)) throw new ArgumentException($"ONNX graph {Name}: the name '{value}' is used twice");
    }

    /// <summary>
    /// Writes the model to <paramref name="path"/> (atomically). Weights go to <paramref name="externalDataName"/> beside it
    /// when <paramref name="externalData"/> says so, or when null and they exceed <see cref="ProtobufLimit"/>.
    /// </summary>
    public void Save(string path, int opset, bool? externalData = null, string externalDataName = "weights.pb")
    {
        var weightBytes = initializers.Sum(i => i.Value.NumEl * i.Value.DType.ElementSize());
        var external = externalData ?? weightBytes > ProtobufLimit;
        if (external)
        {
            var dataPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, externalDataName);
            AtomicFile.Write(dataPath, s =>
            {
                foreach (var (_, value) in initializers)
                    if (value.NumEl * value.DType.ElementSize() >= InlineBelow) WriteElements(s, value);
            });
        }
        var model = new ProtoWriter()
            .Int(1, 8) // ir_version 8: opsets up to 18
            .String(2, "LatentDiffusion.NET")
            .String(3, typeof(OnnxGraph).Assembly.GetName().Version?.ToString() ?? "0")
            .Message(8, o => o.String(1, "").Int(2, opset))
            .Message(7, g => WriteGraph(g, external ? externalDataName : null));
        AtomicFile.WriteAllBytes(path, model.ToArray());
    }

    private void WriteGraph(ProtoWriter g, string? externalData)
    {
        foreach (var (op, operands, results, attributes) in nodes)
        {
            g.Message(1, n =>
            {
                foreach (var i in operands) n.String(1, i);
                foreach (var o in results) n.String(2, o);
                n.String(3, results[0]).String(4, op);
                foreach (var (attrName, value) in attributes) n.Message(5, a => WriteAttribute(a, attrName, value));
            });
        }
        g.String(2, Name);
        long offset = 0;
        foreach (var (initName, value) in initializers)
        {
            var length = value.NumEl * value.DType.ElementSize();
            g.Message(5, t =>
            {
                t.PackedInts(1, value.Shape).Int(2, ElementType(value.DType)).String(8, initName);
                if (externalData is null || length < InlineBelow)
                {
                    t.Bytes(9, value.ToBytes());
                    return;
                }
                t.Message(13, e => e.String(1, "location").String(2, externalData));
                t.Message(13, e => e.String(1, "offset").String(2, offset.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                t.Message(13, e => e.String(1, "length").String(2, length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                t.Int(14, 1); // data_location EXTERNAL
            });
            if (externalData is not null && length >= InlineBelow) offset += length;
        }
        foreach (var (valueName, dtype, dims) in inputs) g.Message(11, v => WriteValueInfo(v, valueName, dtype, dims));
        foreach (var (valueName, dtype, dims) in outputs) g.Message(12, v => WriteValueInfo(v, valueName, dtype, dims));
    }

    // The elements in 64 MiB pieces, so that a 3 GB U-Net is never copied whole into managed memory.
    private static unsafe void WriteElements(Stream s, Tensor value)
    {
        var bytes = value.NumEl * value.DType.ElementSize();
        var data = (byte*)value.DataPointer;
        for (long at = 0; at < bytes; at += 1 << 26)
            s.Write(new ReadOnlySpan<byte>(data + at, (int)Math.Min(1 << 26, bytes - at)));
    }

    public void Dispose()
    {
        foreach (var (_, value) in initializers) value.Dispose();
        initializers.Clear();
    }

    private static void WriteValueInfo(ProtoWriter v, string valueName, DType dtype, object[] dims) =>
        v.String(1, valueName).Message(2, type => type.Message(1, tensor => tensor
            .Int(1, ElementType(dtype))
            .Message(2, shape =>
            {
                foreach (var d in dims)
                    shape.Message(1, dim => _ = d is string symbolic ? dim.String(2, symbolic) : dim.Int(1, Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture)));
            })));

    private static void WriteAttribute(ProtoWriter a, string attrName, object value)
    {
        a.String(1, attrName);
        switch (value)
        {
            case int or long:
                a.Int(3, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)).Int(20, 2);
                break;
            case float or double:
                a.Float(2, Convert.ToSingle(value, System.Globalization.CultureInfo.InvariantCulture)).Int(20, 1);
                break;
            case string s:
                a.String(4, s).Int(20, 3);
                break;
            case long[] ints:
                a.PackedInts(8, ints).Int(20, 7);
                break;
            case double[] floats:
                foreach (var f in floats) a.Float(7, (float)f);
                a.Int(20, 6);
                break;
            default:
                throw new ArgumentException($"ONNX attribute {attrName}: unsupported value type {value.GetType().Name}");
        }
    }

    /// <summary>onnx.proto's TensorProto.DataType.</summary>
    internal static int ElementType(DType dtype) => dtype switch
    {
        DType.Float32 => 1,
        DType.UInt8 => 2,
        DType.Int8 => 3,
        DType.Int16 => 5,
        DType.Int32 => 6,
        DType.Int64 => 7,
        DType.Bool => 9,
        DType.Float16 => 10,
        DType.Float64 => 11,
        DType.BFloat16 => 16,
        _ => throw new NotSupportedException($"dtype {dtype} has no ONNX data type"),
    };
}

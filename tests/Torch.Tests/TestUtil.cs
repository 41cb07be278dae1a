using LatentDiffusion.Tests.Common;
using System.Buffers.Binary;
using System.Text.Json;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Assertions that compare tensors with expected values and say where they differ.</summary>
public static class TestUtil
{
    /// <summary>The default tolerances for float32 results compared with PyTorch's.</summary>
    public const double Atol = 1e-5, Rtol = 1e-5;

    public static float[] ToFloats(Tensor t)
    {
        using var scope = DisposeScope.Enter();
        return t.DType == DType.Float32 ? t.ToArray<float>() : t.To(DType.Float32).ToArray<float>();
    }

    /// <summary>A float32 tensor with the given values and shape.</summary>
    public static Tensor F32(float[] data, params long[] shape) => Tensor.From(data, shape.Length == 0 ? [data.Length] : shape);

    /// <summary>A float64 tensor with the given values and shape.</summary>
    public static Tensor F64(double[] data, params long[] shape) => Tensor.From(data, shape.Length == 0 ? [data.Length] : shape);

    /// <summary>Checks the message is one line, names no C++ internals and starts with the operation.</summary>
    public static void AssertCleanMessage(TorchException e, string operation)
    {
        Assert.Equal(operation, e.Operation);
        Assert.StartsWith(operation + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\r', e.Message);
        Assert.DoesNotContain("Exception raised from", e.Message);
        Assert.DoesNotContain("frame #", e.Message);
        Assert.True(e.Message.Length > operation.Length + 10, $"message too short to be libtorch's: '{e.Message}'");
    }
}

/// <summary>One tensor of the reference file: shape, dtype name and flat values.</summary>
public sealed class RefTensor
{
    public required long[] Shape { get; init; }
    public required string DTypeName { get; init; }
    /// <summary>Values as doubles: float32 values are parsed as float32 (exactly torch's), then widened.</summary>
    public required double[] Data { get; init; }
    /// <summary>Raw 16-bit patterns of float16 / bfloat16 tensors.</summary>
    public ushort[]? Bits { get; init; }

    public DType TorchDType => DTypeOf(DTypeName);

    public float[] Floats => Array.ConvertAll(Data, v => (float)v);
    public long[] Longs => Array.ConvertAll(Data, v => (long)v);

    public static DType DTypeOf(string name) => name switch
    {
        "float32" => DType.Float32,
        "float64" => DType.Float64,
        "float16" => DType.Float16,
        "bfloat16" => DType.BFloat16,
        "int64" => DType.Int64,
        "int32" => DType.Int32,
        "uint8" => DType.UInt8,
        "bool" => DType.Bool,
        _ => throw new ArgumentException($"unknown dtype '{name}' in the reference file"),
    };

    /// <summary>A new CPU tensor holding these values (in the current dispose scope).</summary>
    public Tensor ToTensor() => TorchDType switch
    {
        DType.Float32 => Tensor.From(Floats, Shape),
        DType.Float64 => Tensor.From(Data, Shape),
        DType.Int64 => Tensor.From(Longs, Shape),
        DType.Int32 => Tensor.From(Array.ConvertAll(Data, v => (int)v), Shape),
        DType.UInt8 => Tensor.From(Array.ConvertAll(Data, v => (byte)v), Shape),
        DType.Bool => Tensor.From(Array.ConvertAll(Data, v => v != 0), Shape),
        DType.Float16 or DType.BFloat16 => Tensor.FromBytes(BitsAsBytes(), TorchDType, Shape),
        _ => throw new NotSupportedException(DTypeName),
    };

    /// <summary>The little-endian bytes of the 16-bit patterns.</summary>
    public byte[] BitsAsBytes()
    {
        var bits = Bits ?? throw new InvalidOperationException("this tensor has no raw bits");
        var bytes = new byte[bits.Length * 2];
        for (int i = 0; i < bits.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), bits[i]);
        return bytes;
    }
}

/// <summary>A named case of tests/fixtures/torch/ops_reference.json.</summary>
public sealed class RefCase
{
    private readonly JsonElement json;

    internal RefCase(string name, JsonElement json)
    {
        Name = name;
        this.json = json;
    }

    public string Name { get; }

    public RefTensor Input(string name) => Reference.ParseTensor(Section("inputs", name), $"{Name}.inputs.{name}");

    public RefTensor Output(string name) => Reference.ParseTensor(Section("outputs", name), $"{Name}.outputs.{name}");

    public IEnumerable<string> OutputNames => json.GetProperty("outputs").EnumerateObject().Select(p => p.Name);

    /// <summary>The input as a new tensor (dispose it, or create it inside a DisposeScope).</summary>
    public Tensor In(string name) => Input(name).ToTensor();

    public double Double(string arg) => Arg(arg).GetDouble();
    public long Long(string arg) => Arg(arg).GetInt64();
    public int Int(string arg) => Arg(arg).GetInt32();
    public string String(string arg) => Arg(arg).GetString()!;
    public long[] Longs(string arg) => Arg(arg).EnumerateArray().Select(e => e.GetInt64()).ToArray();

    /// <summary>Compares with output <paramref name="name"/>: dtype, shape, then values within tolerance.</summary>
    public void AssertOut(string name, Tensor actual, double atol = TestUtil.Atol, double rtol = TestUtil.Rtol)
    {
        var expected = Output(name);
        Assert.True(expected.TorchDType == actual.DType, $"{Name}.{name}: dtype {actual.DType}, expected {expected.TorchDType}");
        TensorAssert.Close(actual, expected.Data, expected.Shape, atol, rtol, $"{Name}.{name}");
    }

    /// <summary>Compares with output <paramref name="name"/> exactly (dtype, shape and every bit of every value).</summary>
    public void AssertExact(string name, Tensor actual)
    {
        var expected = Output(name);
        Assert.True(expected.TorchDType == actual.DType, $"{Name}.{name}: dtype {actual.DType}, expected {expected.TorchDType}");
        TensorAssert.Exact(actual, expected.Data, expected.Shape, $"{Name}.{name}");
        if (expected.Bits is not null) Assert.Equal(expected.BitsAsBytes(), actual.ToBytes());
    }

    private JsonElement Section(string section, string name)
    {
        if (!json.TryGetProperty(section, out var s) || !s.TryGetProperty(name, out var t))
            throw new KeyNotFoundException($"reference case '{Name}' has no {section}.{name}; regenerate with make_ops_reference.py");
        return t;
    }

    private JsonElement Arg(string name)
    {
        if (!json.TryGetProperty("args", out var a) || !a.TryGetProperty(name, out var v))
            throw new KeyNotFoundException($"reference case '{Name}' has no argument '{name}'");
        return v;
    }
}

/// <summary>
/// The PyTorch reference values (tests/fixtures/torch/ops_reference.json, written by
/// make_ops_reference.py with PyTorch 1.13). Tests only read it; they never run Python.
/// </summary>
public static class Reference
{
    private static readonly Lazy<(string Torch, Dictionary<string, JsonElement> Cases)> file = new(Load);

    public static string Path => System.IO.Path.Combine(AppContext.BaseDirectory, "fixtures", "torch", "ops_reference.json");

    /// <summary>The PyTorch version that produced the file.</summary>
    public static string TorchVersion => file.Value.Torch;

    public static IEnumerable<string> CaseNames => file.Value.Cases.Keys;

    public static RefCase Case(string name) =>
        file.Value.Cases.TryGetValue(name, out var c)
            ? new RefCase(name, c)
            : throw new KeyNotFoundException($"no reference case '{name}' in {Path}; regenerate with make_ops_reference.py");

    /// <summary>Theory data: the output names of one case.</summary>
    public static TheoryData<string> Outputs(string caseName)
    {
        var data = new TheoryData<string>();
        foreach (var n in Case(caseName).OutputNames) data.Add(n);
        return data;
    }

    private static (string, Dictionary<string, JsonElement>) Load()
    {
        if (!File.Exists(Path)) throw new FileNotFoundException($"the reference file is missing: {Path}");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path));
        var root = doc.RootElement.Clone();
        var cases = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in root.GetProperty("cases").EnumerateObject()) cases.Add(p.Name, p.Value);
        return (root.GetProperty("torch").GetString() ?? "?", cases);
    }

    internal static RefTensor ParseTensor(JsonElement t, string where)
    {
        var shape = t.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        var dtype = t.GetProperty("dtype").GetString() ?? throw new InvalidDataException($"{where}: no dtype");
        bool single = dtype is "float32" or "float16" or "bfloat16";
        var data = t.GetProperty("data").EnumerateArray().Select(e => ParseValue(e, single)).ToArray();
        ushort[]? bits = t.TryGetProperty("bits", out var b) ? b.EnumerateArray().Select(e => (ushort)e.GetInt32()).ToArray() : null;
        long count = shape.Aggregate(1L, (x, y) => x * y);
        if (count != data.Length) throw new InvalidDataException($"{where}: shape holds {count} values, data has {data.Length}");
        return new RefTensor { Shape = shape, DTypeName = dtype, Data = data, Bits = bits };
    }

    private static double ParseValue(JsonElement e, bool single)
    {
        if (e.ValueKind == JsonValueKind.String)
        {
            return e.GetString() switch
            {
                "inf" => double.PositiveInfinity,
                "-inf" => double.NegativeInfinity,
                "nan" => double.NaN,
                var s => throw new InvalidDataException($"unexpected value '{s}'"),
            };
        }
        // float32 values are written as the shortest text that reads back as the same float32
        return single ? e.GetSingle() : e.GetDouble();
    }
}

/// <summary>
/// Tests that read <see cref="Tensor.LiveCount"/> or libtorch's global generator: they run alone,
/// after the parallel tests, so that no other test creates tensors or draws numbers meanwhile.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideStateCollection
{
    public const string Name = "process-wide state";
}

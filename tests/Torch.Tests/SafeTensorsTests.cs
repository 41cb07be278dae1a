using System.Buffers.Binary;
using System.Text;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-safetensors-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string PathOf(string name) => Path.Combine(directory, name);

    [Fact]
    public void EveryDTypeRoundTripsBitExactly()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(3);
        var source = new Dictionary<string, Tensor>
        {
            ["f32"] = Tensors.Randn([3, 4], g),
            ["f16"] = Tensors.Randn([2, 5], g).To(DType.Float16),
            ["bf16"] = Tensors.Randn([7], g).To(DType.BFloat16),
            ["f64"] = Tensors.Randn([2, 2], g, DType.Float64),
            ["i64"] = Tensors.Randint(-1000, 1000, [4, 1], g),
            ["i32"] = Tensors.Randint(-1000, 1000, [6], g, DType.Int32),
            ["u8"] = Tensors.Randint(0, 256, [2, 3, 4], g, DType.UInt8),
            ["bool"] = Tensors.Randint(0, 2, [5], g, DType.Bool),
            ["scalar"] = Tensors.Scalar(2.5),
            ["empty"] = Tensors.Zeros([0, 3]),
        };
        var path = PathOf("all.safetensors");
        SafeTensorsFile.Save(path, source, new Dictionary<string, string> { ["format"] = "pt" });

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(source.Keys.Order(), file.Keys.Order());
        Assert.Equal("pt", file.Metadata["format"]);
        foreach (var (name, expected) in source)
        {
            var actual = file.Load(name);
            Assert.Equal(expected.DType, actual.DType);
            Assert.Equal(expected.Shape, actual.Shape);
            Assert.Equal(expected.ToBytes(), actual.ToBytes());
        }
    }

    [Fact]
    public void HeaderIsPaddedSoDataStartsEightByteAligned()
    {
        using var t = Tensors.Ones([3]);
        var path = PathOf("aligned.safetensors");
        SafeTensorsFile.Save(path, [new("x", t)]);
        var bytes = File.ReadAllBytes(path);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, headerLength % 8);
        Assert.Equal(8 + (long)headerLength + 12, bytes.Length);
    }

    [Fact]
    public void ReadsFilesWrittenByPythonAndTheCpuGeneratorMatchesTorchRandnBitForBit()
    {
        using var scope = DisposeScope.Enter();
        using var file = SafeTensorsFile.Open(Path.Combine(AppContext.BaseDirectory, "fixtures/torch/rng_torch_cpu.safetensors"));
        var cases = new (string Name, ulong Seed, long[] Shape)[]
        {
            ("randn.seed0.1x4x8x8", 0, [1, 4, 8, 8]),
            ("randn.seed42.1x4x64x64", 42, [1, 4, 64, 64]),
            ("randn.seed1234.2x4x32x32", 1234, [2, 4, 32, 32]),
            ("randn.seed7.5", 7, [5]),
            ("randn.seed7.16", 7, [16]),
        };
        foreach (var (name, seed, shape) in cases)
        {
            using var g = new Generator(seed);
            Assert.True(file.Load(name).Equal(Tensors.Randn(shape, g)), name);
        }
        using var twice = new Generator(42);
        Assert.True(file.Load("randn.seed42.two_draws.first").Equal(Tensors.Randn([1, 4, 8, 8], twice)));
        Assert.True(file.Load("randn.seed42.two_draws.second").Equal(Tensors.Randn([1, 4, 8, 8], twice)));
    }

    [Fact]
    public void LoadConvertsDTypeOnRequest()
    {
        using var t = Tensors.Full([2], 1.5, DType.Float16);
        var path = PathOf("half.safetensors");
        SafeTensorsFile.Save(path, [new("h", t)]);
        using var file = SafeTensorsFile.Open(path);
        using var f = file.Load("h", DType.Float32);
        Assert.Equal(DType.Float32, f.DType);
        Assert.Equal([1.5f, 1.5f], f.ToArray<float>());
        Assert.Equal(DType.Float16, file.Info("h").DType);
    }

    [Fact]
    public void SaveReplacesAtomicallyAndLeavesNothingBehindWhenItFails()
    {
        var path = PathOf("model.safetensors");
        using (var good = Tensors.Ones([4])) SafeTensorsFile.Save(path, [new("w", good)]);
        var before = File.ReadAllBytes(path);

        var disposed = Tensors.Zeros([2]);
        disposed.Dispose();
        using var ok = Tensors.Ones([2]);
        Assert.Throws<ObjectDisposedException>(() => SafeTensorsFile.Save(path, [new("a", ok), new("b", disposed)]));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(directory));
    }

    [Fact]
    public void MissingTensorNameIsReportedWithTheFile()
    {
        using var t = Tensors.Ones([1]);
        var path = PathOf("one.safetensors");
        SafeTensorsFile.Save(path, [new("present", t)]);
        using var file = SafeTensorsFile.Open(path);
        var e = Assert.Throws<SafeTensorsException>(() => file.Load("absent"));
        Assert.Contains("one.safetensors", e.Message);
        Assert.Contains("'absent'", e.Message);
    }

    // ---- corrupt files: each gives a SafeTensorsException naming the file and the problem ----

    private static byte[] Build(string json, int dataBytes, ulong? declaredHeaderLength = null)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        return bytes;
    }

    public static TheoryData<string, byte[], string> CorruptFiles => new()
    {
        { "too-short", [1, 2, 3], "too short" },
        { "absurd-header", Build("{}", 0, 1UL << 40), "absurd" },
        { "header-past-end", Build("{}", 0, 4096), "runs past the end" },
        { "invalid-json", Build("{\"a\": [1, 2", 0), "not valid JSON" },
        { "not-object", Build("[1, 2]", 0), "not a JSON object" },
        { "unknown-dtype", Build("{\"a\":{\"dtype\":\"F8_E9M9\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), "unknown or unsupported dtype" },
        { "offsets-outside", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), "past the end of the file" },
        { "offsets-reversed", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8), "not an increasing range" },
        // Found by ldm fuzz: a data_offsets element that is not a number named no file.
        { "offsets-array", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[[0],4]}}", 4), "data_offsets must be integers" },
        { "offsets-string", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"x\"]}}", 4), "data_offsets must be integers" },
        { "overlap", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlap" },
        { "shape-length-mismatch", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "needs 12 bytes" },
        { "negative-shape", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "non-negative" },
        { "huge-shape", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,9223372036854775807],\"data_offsets\":[0,4]}}", 4), "absurdly large" },
        { "missing-offsets", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "data_offsets" },
        { "duplicate-name", Build("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2), "twice" },
        { "bad-metadata", Build("{\"__metadata__\":{\"k\":1}}", 0), "__metadata__" },
        // The data section is covered exactly, contiguously, to the end of the file (the reference's InvalidOffset, MetadataIncompleteBuffer).
        { "gap", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12), "a gap of 4 bytes lies between tensors 'a' and 'b'" },
        { "leading-gap", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "leaving the first 4 bytes" },
        { "overlap-contained", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8), "overlap" },
        { "trailing-bytes", Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5), "the tensors cover 4 bytes but the data section holds 5" },
        { "no-tensors-but-data", Build("{}", 3), "the tensors cover 0 bytes but the data section holds 3" },
    };

    [Theory]
    [MemberData(nameof(CorruptFiles))]
    public void CorruptFileGivesAClearException(string name, byte[] content, string expected)
    {
        var path = PathOf(name + ".safetensors");
        File.WriteAllBytes(path, content);
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    /// <summary>A header (padded with spaces, as writers do) whose declared length is one byte off.</summary>
    private string WithHeaderLengthOff(string name, int delta)
    {
        var json = Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}   ");
        var bytes = new byte[8 + json.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(json.Length + delta));
        json.CopyTo(bytes, 8);
        bytes.AsSpan(8 + json.Length).Fill((byte)' '); // data that is JSON whitespace, so a longer header still parses
        var path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void AHeaderLengthOneShortIsRefusedRatherThanReadingEveryTensorOneByteOff()
    {
        var path = WithHeaderLengthOff("short.safetensors", -1);
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Equal($"{path}: the tensors cover 4 bytes but the data section holds 5 (a wrong header length, or trailing bytes)", e.Message);
    }

    [Fact]
    public void AHeaderLengthOneLongIsRefused()
    {
        var path = WithHeaderLengthOff("long.safetensors", +1);
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void AHeaderOfInvalidUtf8IsRefusedNamingTheFile()
    {
        var json = "{\"\u00e9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"u8.ToArray();
        json[2] = 0xFF; // the first byte of 'é' (0xC3) becomes a byte that never occurs in UTF-8
        var bytes = new byte[8 + json.Length + 1];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        var path = PathOf("utf8.safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Equal($"{path}: header is not valid UTF-8 (not a safetensors file, or a corrupted one)", e.Message);
    }

    [Fact]
    public void TruncatedRealFileIsReported()
    {
        using var t = Tensors.Ones([64]);
        var path = PathOf("full.safetensors");
        SafeTensorsFile.Save(path, [new("w", t)]);
        var bytes = File.ReadAllBytes(path);
        var truncated = PathOf("truncated.safetensors");
        File.WriteAllBytes(truncated, bytes[..^10]);
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensorsFile.Open(truncated).Dispose());
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void MissingFileIsReported()
    {
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensorsFile.Open(PathOf("nope.safetensors")));
        Assert.Contains("file not found", e.Message);
    }
}

public sealed class ModuleSafeTensorsTests
{
    private sealed class Net : NN.Module<Tensor, Tensor>
    {
        public readonly NN.Conv2d conv;
        public readonly NN.GroupNorm norm;
        public readonly NN.Linear head;

        public Net(Generator g)
        {
            conv = RegisterModule("conv", new NN.Conv2d(3, 8, 3, padding: 1, generator: g));
            norm = RegisterModule("norm", new NN.GroupNorm(2, 8));
            head = RegisterModule("head", new NN.Linear(8, 4, generator: g));
        }

        public override Tensor Forward(Tensor x)
        {
            using var scope = DisposeScope.Enter();
            var h = norm.Forward(conv.Forward(x)).Mean([2L, 3L]);
            return scope.Keep(head.Forward(h));
        }
    }

    [Fact]
    public void StateDictRoundTripsThroughSafeTensorsBitExactly()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("ld-module-").FullName, "net.safetensors");
        using var a = new Net(new Generator(1));
        using var b = new Net(new Generator(2));
        SafeTensorsFile.Save(path, a.StateDict());

        var loaded = SafeTensorsFile.LoadFile(path);
        try
        {
            Assert.Equal(a.StateDict().Keys, loaded.Keys);
            var result = b.LoadStateDict(loaded);
            Assert.Empty(result.Missing);
            Assert.Empty(result.Unexpected);
        }
        finally
        {
            foreach (var t in loaded.Values) t.Dispose();
        }
        foreach (var (name, tensor) in a.StateDict())
            Assert.Equal(tensor.ToBytes(), b.StateDict()[name].ToBytes());

        using var x = Tensors.Randn([2, 3, 8, 8], new Generator(5));
        using var ya = a.Forward(x);
        using var yb = b.Forward(x);
        Assert.True(ya.Equal(yb));
    }
}

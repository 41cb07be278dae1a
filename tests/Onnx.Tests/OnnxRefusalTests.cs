using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>Bad ONNX input: each is one line naming the file and the problem, never an ONNX Runtime crash.</summary>
public sealed class OnnxRefusalTests
{
    /// <summary>
    /// A U-Net-shaped graph: out_sample = sample · w, w = 2 (1 KiB of weights: external data when asked) through a reshape by
    /// a shape constant (which must stay inside the model), its other inputs unused, with the given extra inputs.
    /// </summary>
    private static string TinyUnet(string folder, bool externalData = false, int opset = 17, object[]? sampleDims = null, params string[] extraInputs)
    {
        Directory.CreateDirectory(folder);
        using var g = new OnnxGraph("unet");
        var sample = g.Input("sample", DType.Float32, sampleDims ?? ["batch", 4L, "height", "width"]);
        g.Input("timestep", DType.Int64, "steps");
        g.Input("encoder_hidden_states", DType.Float32, "batch", "sequence", 32L);
        foreach (var extra in extraInputs) g.Input(extra, DType.Float32, "batch");
        using var w = Tensors.Full([64, 4, 1, 1], 2.0);
        var first = g.Op("Slice", [g.Initializer("w", w), g.Ints(0), g.Ints(1)]);
        var product = g.Op("Reshape", [g.Op("Mul", [sample, first]), g.Ints(0, 4, 0, 0)]);
        g.Output(product, "out_sample", DType.Float32, "batch", 4L, "height", "width");
        var path = Path.Combine(folder, "model.onnx");
        g.Save(path, opset, externalData);
        return path;
    }

    private static string TempFolder() => Directory.CreateTempSubdirectory("ld-onnx-bad-").FullName;

    [Fact]
    public void AGraphWithExternalWeightsRunsThroughIOBindingOnOurTensors()
    {
        var path = TinyUnet(TempFolder(), externalData: true);
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(path)!, "weights.pb")));
        using var unet = OnnxDenoiser.Open(path, new LatentUNet.UNet2DConditionModelConfig(), new OnnxEngineOptions());
        using var scope = DisposeScope.Enter();
        var sample = Tensor.From(Enumerable.Range(0, 2 * 4 * 3 * 5).Select(i => (float)i).ToArray(), 2, 4, 3, 5);
        var result = unet.Forward(sample, 981, new DenoiserConditioning(Tensors.Zeros([2, 77, 32])));
        Assert.Equal(sample.Shape, result.Shape);
        Assert.Equal(sample.ToArray<float>().Select(v => 2 * v), result.ToArray<float>());
    }

    [Fact]
    public void AMissingExternalDataFileIsOneLineNamingIt()
    {
        var path = TinyUnet(TempFolder(), externalData: true);
        File.Delete(Path.Combine(Path.GetDirectoryName(path)!, "weights.pb"));
        var e = Assert.Throws<InvalidDataException>(() => OnnxDenoiser.Open(path, new LatentUNet.UNet2DConditionModelConfig(), new OnnxEngineOptions()));
        Assert.Contains(path, e.Message);
        Assert.Contains("weights.pb", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ATruncatedModelIsOneLine()
    {
        var folder = OnnxFixture.Copy();
        var unet = Path.Combine(folder, "unet", "model.onnx");
        var bytes = File.ReadAllBytes(unet);
        File.WriteAllBytes(unet, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => OnnxStableDiffusion.FromPretrained(folder));
        Assert.StartsWith($"{unet}: ONNX Runtime cannot load this model", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AnUnsupportedOpsetIsOneLine()
    {
        var path = TinyUnet(TempFolder(), opset: 99);
        var e = Assert.Throws<InvalidDataException>(() => OnnxDenoiser.Open(path, new LatentUNet.UNet2DConditionModelConfig(), new OnnxEngineOptions()));
        Assert.Contains(path, e.Message);
        Assert.Contains("opset", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void UnrecognisedInputsAreNamed()
    {
        var path = TinyUnet(TempFolder(), extraInputs: ["class_labels", "added_cond"]);
        var e = Assert.Throws<InvalidDataException>(() => OnnxDenoiser.Open(path, new LatentUNet.UNet2DConditionModelConfig(), new OnnxEngineOptions()));
        Assert.Contains("unrecognised inputs 'class_labels', 'added_cond'", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AGraphWithoutTheTimestepInputIsNamedWithTheInputsItHas()
    {
        var folder = TempFolder();
        using var g = new OnnxGraph("unet");
        var x = g.Input("x", DType.Float32, "batch", 4L, 8L, 8L);
        g.Output(g.Op("Relu", [x]), "y", DType.Float32, "batch", 4L, 8L, 8L);
        var path = Path.Combine(folder, "model.onnx");
        g.Save(path, 17);
        var e = Assert.Throws<InvalidDataException>(() => OnnxDenoiser.Open(path, new LatentUNet.UNet2DConditionModelConfig(), new OnnxEngineOptions()));
        Assert.Equal($"{path}: no sample input (sample); the graph's inputs are 'x' float32 [batch, 4, 8, 8]", e.Message);
    }

    [Fact]
    public void ARequestWhoseShapeContradictsTheGraphIsOneLine()
    {
        var folder = OnnxFixture.Copy();
        TinyUnet(Path.Combine(folder, "unet"), sampleDims: [2L, 4L, 8L, 8L]);
        using var pipe = OnnxStableDiffusion.FromPretrained(folder);
        var e = Assert.Throws<ArgumentException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "a horse", Steps = 1, Width = 128, Height = 128 }));
        Assert.Equal($"{Path.Combine(folder, "unet", "model.onnx")}: input 'sample' would be [2, 4, 16, 16] but the model takes float32 [2, 4, 8, 8]", e.Message);
    }

    [Fact]
    public void ClipSkipBeyondWhatTheExportHasIsOneLine()
    {
        using var pipe = OnnxFixture.Load();
        var e = Assert.ThrowsAny<ArgumentException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "a horse", Steps = 1, ClipSkip = 2 }));
        Assert.Contains("clip skip", e.Message);
    }

    [Fact]
    public void AFolderWithoutAUnetGraphIsNotOnnx()
    {
        var folder = OnnxFixture.Copy();
        File.Delete(Path.Combine(folder, "unet", "model.onnx"));
        Assert.False(OnnxStableDiffusion.IsOnnxFolder(folder));
        var e = Assert.Throws<InvalidDataException>(() => OnnxStableDiffusion.FromPretrained(folder));
        Assert.Equal($"{folder}: not an ONNX Stable Diffusion folder (no unet/model.onnx)", e.Message);
    }

    [Fact]
    public void CudaThatCannotStartNamesWhatIsMissing()
    {
        // The default build has the CPU provider only; the -p:OnnxGpu=true build on a machine without this device cannot start it.
        var device = OnnxRuntimeSetup.HasCuda ? Device.Cuda(99) : Device.Cuda();
        var e = Assert.Throws<NotSupportedException>(() => OnnxStableDiffusion.FromPretrained(OnnxFixture.Folder, new OnnxEngineOptions { Device = device }));
        Assert.Contains("CUDA 13", e.Message);
        if (!OnnxRuntimeSetup.HasCuda) Assert.Contains("-p:OnnxGpu=true (Microsoft.ML.OnnxRuntime.Gpu.Linux 1.32.0)", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}

using LatentDiffusion.LatentUNet;
using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>The U-Net exported from our module tree runs in ONNX Runtime and gives libtorch's output and the golden's.</summary>
public sealed class UNetExportTests(ITestOutputHelper output)
{
    private static string TinyUnet => Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "latentunet", "sd_tiny", "unet");

    [Theory]
    [InlineData("scalar_t")]
    [InlineData("float_t")]
    public void TheExportedTinyUnetMatchesLibtorchAndTheGolden(string name)
    {
        using var scope = DisposeScope.Enter();
        using var unet = UNet2DConditionModel.FromPretrained(TinyUnet);
        unet.Eval();
        var folder = Directory.CreateTempSubdirectory("ld-onnx-export-").FullName;
        var path = Path.Combine(folder, "model.onnx");
        using (var graph = UNetExport.Emit(unet)) graph.Save(path, 17);
        using var onnx = OnnxDenoiser.Open(path, unet.Config, OnnxFixture.Engine);

        using var golden = SafeTensorsFile.Open(SharedData.Fixture("latentunet/goldens/unet.safetensors"));
        var sample = golden.Load($"{name}.input.sample");
        var timestep = golden.Load($"{name}.input.timestep", DType.Float64).Item();
        var hidden = golden.Load($"{name}.input.encoder_hidden_states");
        Tensor expected;
        using (Autograd.InferenceMode()) expected = unet.Forward(sample, timestep, hidden);
        var actual = onnx.Forward(sample, timestep, new DenoiserConditioning(hidden));
        var vsTorch = TensorAssert.Close(actual, expected, 1e-4, 0, "onnx vs libtorch");
        var vsGolden = TensorAssert.Close(actual, golden.Load($"{name}.output.sample"), 1e-4, 1e-4, "onnx vs golden");
        output.WriteLine($"{name}: exported U-Net vs libtorch max |Δ| {vsTorch:g3}, vs golden {vsGolden:g3} (tolerance 1e-4)");
    }
}

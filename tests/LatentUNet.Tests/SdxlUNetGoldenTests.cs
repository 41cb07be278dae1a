using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.LatentUNet.Tests;

/// <summary>
/// Golden check v2 #2: the tiny SDXL-style UNet2DConditionModel (addition_embed_type "text_time", per-block
/// transformer_layers_per_block [1, 2], use_linear_projection, attention_head_dim as per-block head counts) against
/// diffusers 0.30.3 with added_cond_kwargs = {text_embeds, time_ids}.
/// </summary>
public class SdxlUNetGoldenTests(ITestOutputHelper output)
{
    // goldens/sdxl_unet.safetensors tolerance in ../shared/golden/v2/manifest.json.
    private const double Atol = 2e-5, Rtol = 1e-4;

    private static string UnetFolder => SharedData.Fixture("sdxl/sdxl_tiny/unet");

    [Theory]
    [InlineData("cfg_pair")]
    [InlineData("batch_t")]
    public void ForwardWithAddedConditionsMatchesDiffusers(string name)
    {
        using var unet = UNet2DConditionModel.FromPretrained(UnetFolder);
        var golden = SafeTensorsFile.LoadFile(SharedData.Fixture("sdxl/goldens/sdxl_unet.safetensors"));
        try
        {
            Assert.True(unet.TakesAddedConditions);
            using var noGrad = Autograd.NoGrad();
            var added = new AddedConditions(golden[$"{name}.input.text_embeds"], golden[$"{name}.input.time_ids"]);
            using var sample = unet.Forward(golden[$"{name}.input.sample"], golden[$"{name}.input.timestep"], golden[$"{name}.input.encoder_hidden_states"], added: added);
            var error = TensorAssert.Close(sample, golden[$"{name}.output.sample"], Atol, Rtol, name);
            output.WriteLine($"{name}: max abs error {error:G3} (atol {Atol}, rtol {Rtol})");
        }
        finally
        {
            foreach (var t in golden.Values) t.Dispose();
        }
    }

    [Fact]
    public void MissingOrMisfittingAddedConditionsAreOneLineErrors()
    {
        using var unet = UNet2DConditionModel.FromPretrained(UnetFolder);
        using var noGrad = Autograd.NoGrad();
        using var sample = Tensors.Zeros([1, 4, 8, 8]);
        using var context = Tensors.Zeros([1, 77, 96]);
        var missing = Assert.Throws<ArgumentException>(() => unet.Forward(sample, 1.0, context));
        Assert.Contains("text_time", missing.Message);
        // The refiner's 5 time ids (aesthetic score) do not fit a base U-Net's add_embedding: 32 + 5 × 8 ≠ 80.
        using var text = Tensors.Zeros([1, 32]);
        using var fiveIds = Tensors.Zeros([1, 5]);
        var misfit = Assert.Throws<ArgumentException>(() => unet.Forward(sample, 1.0, context, added: new AddedConditions(text, fiveIds)));
        Assert.Contains("projection_class_embeddings_input_dim is 80", misfit.Message);
        Assert.DoesNotContain('\n', misfit.Message);
    }
}

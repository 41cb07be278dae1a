using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>
/// Check 13 of the v2 goldens: the tiny model's ONNX export (PyTorch's exporter) run by our ONNX engine through the one
/// Stable Diffusion pipeline gives diffusers' PyTorch golden within that golden's tolerances; and each graph matches the
/// component goldens of v1 (the finer checks the v2 README suggests).
/// </summary>
public sealed class OnnxGoldenTests(ITestOutputHelper output)
{
    [Fact]
    public void TextToImageMatchesTheDiffusersGolden()
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/sd_txt2img_pndm.safetensors"));
        using var pipe = OnnxFixture.Load();
        Assert.IsType<OnnxDenoiser>(pipe.Models.Denoiser);
        var request = new GenerationRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 5,
            GuidanceScale = 7.5,
            Width = 64,
            Height = 64,
            Latents = golden.Load("input.latents"),
        };
        Assert.Equal("PNDMScheduler", pipe.SchedulerConfig.ClassName);
        using var result = pipe.TextToImage(request, noise: new QueueNoise([]));
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 3e-4, 1e-4, "latents");
        var image = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"check 13: latents max |Δ| {latents:g3} (atol 3e-4), image {image:g3} (atol 1e-4)");
        Assert.Equal("sd_tiny_onnx", result.Parameters[0].Model);
    }

    [Theory]
    [InlineData("scalar_t")]
    [InlineData("batch_t")]
    [InlineData("float_t")]
    public void UnetMatchesTheComponentGolden(string name)
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("latentunet/goldens/unet.safetensors"));
        using var pipe = OnnxFixture.Load();
        var sample = golden.Load($"{name}.input.sample");
        var timesteps = golden.Load($"{name}.input.timestep", DType.Float64).ToArray<double>(); // int64 or float, a scalar or one per row
        var hidden = golden.Load($"{name}.input.encoder_hidden_states");
        // The denoiser takes one timestep per call (the pipeline's loop): rows with different timesteps run separately.
        var rows = Enumerable.Range(0, (int)sample.Size(0)).Select(i =>
            pipe.Models.Denoiser.Forward(sample.Narrow(0, i, 1), timesteps[Math.Min(i, timesteps.Length - 1)], new DenoiserConditioning(hidden.Narrow(0, i, 1))));
        var error = TensorAssert.Close(Tensor.Cat(rows.ToList()), golden.Load($"{name}.output.sample"), 1e-4, 1e-4, name);
        output.WriteLine($"unet {name}: max |Δ| {error:g3} (atol 1e-4)");
    }

    [Fact]
    public void TextEncoderMatchesTheComponentGolden()
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("textencoder/clip/text_encoder.safetensors"));
        using var pipe = OnnxFixture.Load();
        var hidden = pipe.Models.TextEncoder.EncodePrompt(golden.Load("input.input_ids"), null, 0);
        var error = TensorAssert.Close(hidden, golden.Load("output.last_hidden_state"), 1e-4, 1e-4, "last_hidden_state");
        output.WriteLine($"text encoder: max |Δ| {error:g3} (atol 1e-4)");
    }

    [Fact]
    public void VaeDecoderMatchesTheComponentGolden()
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("autoencoder/vae.safetensors"));
        using var pipe = OnnxFixture.Load();
        var decoded = pipe.Models.Autoencoder.Decode(golden.Load("input.latents"));
        var error = TensorAssert.Close(decoded, golden.Load("output.decode.sample"), 2e-4, 1e-4, "decode");
        output.WriteLine($"vae decoder: max |Δ| {error:g3} (atol 2e-4)");
    }
}

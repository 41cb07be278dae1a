using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Golden checks v2 #3 and #4: diffusers 0.30.3's StableDiffusionXLPipeline and StableDiffusionXLImg2ImgPipeline on the
/// tiny SDXL folder (two text encoders, text_time micro-conditioning, Euler "leading", VAE scaling 0.13025).
/// </summary>
public sealed class SdxlPipelineTests(ITestOutputHelper output)
{
    public static string TinyXl => SharedData.Fixture("sdxl/sdxl_tiny");

    private static SafeTensorsFile Golden(string name) => SafeTensorsFile.Open(SharedData.Fixture($"sdxl/goldens/{name}.safetensors"));

    // EulerDiscreteScheduler.step draws a tensor it never uses (s_churn 0): the goldens do not save those draws.
    private static IEnumerable<Tensor> Unused(int count) => Enumerable.Range(0, count).Select(_ => Tensors.Zeros([1, 4, 8, 8]));

    /// <summary>The call of goldens/sdxl_txt2img (manifest entry "call").</summary>
    private static GenerationRequest GoldenTextToImage(SafeTensorsFile golden) => new()
    {
        Prompt = "a photograph of an astronaut riding a horse",
        NegativePrompt = "blurry, low quality",
        Steps = 4,
        GuidanceScale = 5.0,
        Width = 64,
        Height = 64,
        Latents = golden.Load("input.latents"),
    };

    [Fact]
    public void TextToImageMatchesDiffusers()
    {
        using var scope = DisposeScope.Enter();
        using var golden = Golden("sdxl_txt2img");
        using var pipe = StableDiffusionPipeline.FromPretrained(TinyXl);
        Assert.NotNull(pipe.Xl);
        Assert.False(pipe.IsRefiner);
        var request = GoldenTextToImage(golden);
        Assert.Equal(golden.Load("input.prompt_ids").ToArray<long>(), pipe.Tokenizer.Encode(request.Prompt).InputIdsInt64());
        Assert.Equal(golden.Load("input.prompt_ids_2").ToArray<long>(), pipe.Tokenizer2!.Encode(request.Prompt).InputIdsInt64());

        using var result = pipe.TextToImage(request, noise: new QueueNoise(Unused(4)));
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 2e-4, 1e-4, "latents");
        var image = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"txt2img: latents max abs error {latents:G3} (atol 2e-4), image {image:G3} (atol 1e-4)");
    }

    [Fact]
    public void EmphasisLongPromptsAndSecondPromptsReachBothEncoders()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(TinyXl);
        var request = new GenerationRequest { Prompt = "a horse", Steps = 2, GuidanceScale = 5, Width = 64, Height = 64, Seed = 1 };
        using var plain = pipe.TextToImage(request);
        using var weighted = pipe.TextToImage(request with { Prompt = "a (horse:1.4)" });
        using var second = pipe.TextToImage(request with { Xl = new XlOptions { Prompt2 = "a castle" } });
        using var sameSecond = pipe.TextToImage(request with { Xl = new XlOptions { Prompt2 = "a horse" } });
        // 100 words: two 77-token rows per encoder, joined along the sequence.
        using var longPrompt = pipe.TextToImage(request with { Prompt = string.Join(", ", Enumerable.Repeat("a horse", 50)) });
        Assert.True(TensorAssert.MaxAbsDifference(plain.Latents, weighted.Latents) > 1e-5, "emphasis must change the conditioning");
        Assert.True(TensorAssert.MaxAbsDifference(plain.Latents, second.Latents) > 1e-5, "prompt_2 must reach text_encoder_2");
        Assert.Equal(0, TensorAssert.MaxAbsDifference(plain.Latents, sameSecond.Latents));
        Assert.DoesNotContain(TensorAssert.Values(longPrompt.Latents), v => !double.IsFinite(v));
        Assert.True(TensorAssert.MaxAbsDifference(plain.Latents, longPrompt.Latents) > 1e-5);
    }

    [Fact]
    public void ImageToImageMatchesDiffusers()
    {
        using var scope = DisposeScope.Enter();
        using var golden = Golden("sdxl_img2img");
        using var pipe = StableDiffusionPipeline.FromPretrained(TinyXl);
        var init = new RgbImage(64, 64, golden.Load("input.image_uint8").ToArray<byte>());
        var request = new ImageToImageRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 5,
            GuidanceScale = 5.0,
            InitImage = init,
            Strength = 0.6,
            // unused by a base model (requires_aesthetics_score false), as in diffusers
            Xl = new XlOptions { AestheticScore = 6.0, NegativeAestheticScore = 2.5 },
        };
        var noise = new QueueNoise(new[] { golden.Load("noise.000"), golden.Load("noise.001") }.Concat(Unused(3)));
        using var result = pipe.ImageToImage(request, noise: noise);
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 1e-4, 1e-4, "latents");
        var image = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"img2img: latents max abs error {latents:G3} (atol 1e-4), image {image:G3} (atol 1e-4)");
    }

    [Fact]
    public void Fp16VariantFolderLoadsAndGivesTheSameImage()
    {
        // The tiny weights are exactly representable in float16 (golden README), so the variant must give the same latents.
        using var folder = new TinyXlFolder();
        using (var scope = DisposeScope.Enter())
        {
            void Half(Module module, Action<string> save, string relative, string weights)
            {
                module.To(Device.CPU, DType.Float16);
                save(System.IO.Path.Combine(folder.Path, relative));
                File.Delete(System.IO.Path.Combine(folder.Path, relative, weights));
                module.Dispose();
            }
            var unet = LatentUNet.UNet2DConditionModel.FromPretrained(System.IO.Path.Combine(folder.Path, "unet"));
            Half(unet, d => unet.Save(d, "fp16"), "unet", "diffusion_pytorch_model.safetensors");
            var vae = Autoencoder.AutoencoderKL.FromPretrained(System.IO.Path.Combine(folder.Path, "vae"));
            Half(vae, d => vae.Save(d, "fp16"), "vae", "diffusion_pytorch_model.safetensors");
            var te = TextEncoder.ClipTextModel.FromPretrained(System.IO.Path.Combine(folder.Path, "text_encoder"));
            Half(te, d => te.Save(d, "fp16"), "text_encoder", "model.safetensors");
            var te2 = TextEncoder.ClipTextModelWithProjection.FromPretrained(System.IO.Path.Combine(folder.Path, "text_encoder_2"));
            Half(te2, d => te2.Save(d, "fp16"), "text_encoder_2", "model.safetensors");
        }
        Assert.True(File.Exists(System.IO.Path.Combine(folder.Path, "text_encoder_2", "model.fp16.safetensors")));
        using var golden = Golden("sdxl_txt2img");
        using var pipe = StableDiffusionPipeline.FromPretrained(folder.Path, new PipelineOptions { Variant = "fp16" });
        var request = GoldenTextToImage(golden);
        using var result = pipe.TextToImage(request, noise: new QueueNoise(Unused(4)));
        using var expected = golden.Load("output.latents");
        var error = TensorAssert.Close(result.Latents, expected, 2e-4, 1e-4, "fp16-variant latents");
        output.WriteLine($"fp16 variant: latents max abs error {error:G3} (atol 2e-4)");
    }
}

/// <summary>The live native tensor count is process-wide: this runs in the collection that runs alone.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class SdxlLeakTests
{
    [Fact]
    public void GenerationAndHandOffKeepTheLiveTensorCountFlat()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl);
        var request = new GenerationRequest { Prompt = "a (horse:1.2)", NegativePrompt = "blurry", Steps = 4, GuidanceScale = 5, Width = 64, Height = 64 };
        void Run()
        {
            using var first = pipe.TextToImage(request with { Xl = new XlOptions { DenoisingEnd = 0.6 } });
            pipe.Refine(request, first.Latents, 0.6).Dispose();
        }
        Run();
        var before = LiveTensorCount.Settled();
        Run();
        Assert.Equal(before, LiveTensorCount.Settled());
    }
}

using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Microsoft.ML.OnnxRuntime;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>
/// The tiny SDXL of ../shared/golden/v2 (tests/fixtures/sdxl) exported by our exporter in optimum's SDXL ONNX layout runs
/// in ONNX Runtime through the one pipeline and gives the golden checks v2 #1–#4 and libtorch's numbers; so does a refiner.
/// </summary>
public sealed class SdxlExportTests : IClassFixture<SdxlExportTests.Exported>
{
    public sealed class Exported : IDisposable
    {
        public static string Torch => SharedData.Fixture("sdxl/sdxl_tiny");
        public string Onnx { get; }

        public Exported()
        {
            Onnx = Path.Combine(Directory.CreateTempSubdirectory("ld-onnx-sdxl-").FullName, "sdxl_tiny_onnx");
            using var pipe = StableDiffusionPipeline.FromPretrained(Torch);
            StableDiffusionOnnxExport.Export(pipe, Onnx);
        }

        /// <summary>Runs <paramref name="test"/> on a writable copy of the export (for tests that break it), deleted afterwards.</summary>
        public void WithCopy(Action<string> test)
        {
            var target = Path.Combine(Directory.CreateTempSubdirectory("ld-onnx-sdxl-bad-").FullName, "copy");
            try
            {
                foreach (var file in Directory.GetFiles(Onnx, "*", SearchOption.AllDirectories))
                {
                    var to = Path.Combine(target, Path.GetRelativePath(Onnx, file));
                    Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                    File.Copy(file, to);
                }
                test(target);
            }
            finally
            {
                Directory.Delete(Path.GetDirectoryName(target)!, recursive: true);
            }
        }

        public void Dispose() => Directory.Delete(Path.GetDirectoryName(Onnx)!, recursive: true);
    }

    private readonly Exported exported;
    private readonly ITestOutputHelper output;

    public SdxlExportTests(Exported exported, ITestOutputHelper output) => (this.exported, this.output) = (exported, output);

    private static SafeTensorsFile Golden(string name) => SafeTensorsFile.Open(SharedData.Fixture($"sdxl/goldens/{name}.safetensors"));

    // EulerDiscreteScheduler.step draws a tensor it never uses (s_churn 0): the goldens do not save those draws.
    private static IEnumerable<Tensor> Unused(int count) => Enumerable.Range(0, count).Select(_ => Tensors.Zeros([1, 4, 8, 8]));

    private static string[] Names(IReadOnlyDictionary<string, NodeMetadata> nodes) => [.. nodes.Keys];

    [Fact]
    public void TheFolderHasOptimumsSdxlLayoutAndGraphNames()
    {
        Assert.Equal(["model_index.json", "scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae_decoder", "vae_encoder"],
            Directory.GetFileSystemEntries(exported.Onnx).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var index = ModelIndex.Load(exported.Onnx);
        Assert.Equal("ORTStableDiffusionXLPipeline", index.ClassName);
        Assert.True(index.Flag("force_zeros_for_empty_prompt", false));
        Assert.Equal(("transformers", "CLIPTokenizer"), index.Components["tokenizer_2"]);

        using (var unet = new InferenceSession(Path.Combine(exported.Onnx, "unet", OnnxStableDiffusion.ModelFile)))
        {
            Assert.Equal(["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"], Names(unet.InputMetadata));
            Assert.Equal(["out_sample"], Names(unet.OutputMetadata));
            Assert.Equal([-1, 32], unet.InputMetadata["text_embeds"].Dimensions);
            Assert.Equal([-1, 6], unet.InputMetadata["time_ids"].Dimensions);
            Assert.Equal(["batch", "", "height", "width"], unet.InputMetadata["sample"].SymbolicDimensions);
        }
        using (var text2 = new InferenceSession(Path.Combine(exported.Onnx, "text_encoder_2", OnnxStableDiffusion.ModelFile)))
        {
            Assert.Equal(["input_ids"], Names(text2.InputMetadata));
            var outputs = Names(text2.OutputMetadata);
            Assert.Equal(["text_embeds", "last_hidden_state", .. Enumerable.Range(0, 11).Select(OnnxTextEncoder.HiddenStateOutput)], outputs.Take(13));
            Assert.Equal([-1, 32], text2.OutputMetadata["text_embeds"].Dimensions);
        }
        using (var text = new InferenceSession(Path.Combine(exported.Onnx, "text_encoder", OnnxStableDiffusion.ModelFile)))
            Assert.Equal(["last_hidden_state", "pooler_output", .. Enumerable.Range(0, 4).Select(OnnxTextEncoder.HiddenStateOutput)], Names(text.OutputMetadata).Take(6));
    }

    [Fact]
    public void TheExportedEncodersAndUNetMatchTheComponentGoldens()
    {
        using var scope = DisposeScope.Enter();
        using var pipe = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        using (var golden = Golden("sdxl_text_encoders"))
        {
            using var first = pipe.Models.TextEncoder.EncodeHiddenState(golden.Load("input.input_ids"), null, 0, pooled: false);
            using var second = pipe.Models.TextEncoder2!.EncodeHiddenState(golden.Load("input.input_ids_2"), null, 0, pooled: true);
            var e1 = TensorAssert.Close(first.Hidden, golden.Load("output.text_encoder.hidden_states_penultimate"), 3e-5, 1e-4, "text_encoder hidden_states[-2]");
            var e2 = TensorAssert.Close(second.Hidden, golden.Load("output.text_encoder_2.hidden_states_penultimate"), 3e-5, 1e-4, "text_encoder_2 hidden_states[-2]");
            var e3 = TensorAssert.Close(second.Pooled!, golden.Load("output.text_encoder_2.text_embeds"), 3e-5, 1e-4, "text_encoder_2 text_embeds");
            output.WriteLine($"text encoders (golden #1): hidden_states[-2] {e1:g3} and {e2:g3}, text_embeds {e3:g3} (atol 3e-5)");
        }
        using (var golden = Golden("sdxl_unet"))
        {
            var conditioning = new DenoiserConditioning(golden.Load("cfg_pair.input.encoder_hidden_states"), golden.Load("cfg_pair.input.text_embeds"), golden.Load("cfg_pair.input.time_ids"));
            var sample = pipe.Models.Denoiser.Forward(golden.Load("cfg_pair.input.sample"), golden.Load("cfg_pair.input.timestep").Item(), conditioning);
            var error = TensorAssert.Close(sample, golden.Load("cfg_pair.output.sample"), 2e-5, 1e-4, "U-Net cfg_pair");
            output.WriteLine($"U-Net with text_embeds and time_ids (golden #2, cfg_pair): max |Δ| {error:g3} (atol 2e-5)");
        }
    }

    [Fact]
    public void TextToImageOfTheExportMatchesTheGoldenAndLibtorch()
    {
        using var scope = DisposeScope.Enter();
        using var golden = Golden("sdxl_txt2img");
        using var onnx = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        using var torch = StableDiffusionPipeline.FromPretrained(Exported.Torch);
        Assert.NotNull(onnx.Xl);
        var request = new GenerationRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 4,
            GuidanceScale = 5.0,
            Width = 64,
            Height = 64,
            Latents = golden.Load("input.latents"),
        };
        using var result = onnx.TextToImage(request, noise: new QueueNoise(Unused(4)));
        using var reference = torch.TextToImage(request, noise: new QueueNoise(Unused(4)));
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 2e-4, 1e-4, "latents");
        var image = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        var vsTorch = TensorAssert.Close(result.Latents, reference.Latents, 2e-4, 1e-4, "latents vs libtorch");
        output.WriteLine($"SDXL export, txt2img (golden #3): latents max |Δ| {latents:g3} (atol 2e-4), image {image:g3} (atol 1e-4); vs libtorch {vsTorch:g3}");
    }

    [Fact]
    public void ImageToImageOfTheExportMatchesTheGolden()
    {
        using var scope = DisposeScope.Enter();
        using var golden = Golden("sdxl_img2img");
        using var pipe = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        var request = new ImageToImageRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 5,
            GuidanceScale = 5.0,
            InitImage = new RgbImage(64, 64, golden.Load("input.image_uint8").ToArray<byte>()),
            Strength = 0.6,
        };
        var noise = new QueueNoise(new[] { golden.Load("noise.000"), golden.Load("noise.001") }.Concat(Unused(3)));
        using var result = pipe.ImageToImage(request, noise: noise);
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 1e-4, 1e-4, "latents");
        var image = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"SDXL export, img2img (golden #4): latents max |Δ| {latents:g3} (atol 1e-4), image {image:g3} (atol 1e-4)");
    }

    [Fact]
    public void ClipSkipEmphasisSecondPromptsAndABatchGiveLibtorchsLatents()
    {
        using var scope = DisposeScope.Enter();
        using var onnx = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        using var torch = StableDiffusionPipeline.FromPretrained(Exported.Torch);
        var request = new GenerationRequest
        {
            Prompt = "a (horse:1.3) in a field", Steps = 3, GuidanceScale = 5, Width = 64, Height = 64, Seed = 7, NumImages = 2, ClipSkip = 2,
            Sampler = "euler_a", Xl = new XlOptions { Prompt2 = "a castle", OriginalSize = new PixelSize(128, 96) },
        };
        using var expected = torch.TextToImage(request);
        using var actual = onnx.TextToImage(request);
        using var unskipped = onnx.TextToImage(request with { ClipSkip = 1 });
        var error = TensorAssert.Close(actual.Latents, expected.Latents, 2e-4, 1e-4, "clip skip 2, emphasis, prompt_2, batch 2");
        Assert.True(TensorAssert.MaxAbsDifference(actual.Latents, unskipped.Latents) > 1e-3, "clip skip 2 must change the result");
        output.WriteLine($"SDXL export vs libtorch (clip skip 2 through hidden_states.N, emphasis, prompt_2, original size, 2 images, euler_a): latents max |Δ| {error:g3}");
    }

    [Fact]
    public void ARefinerExportsWithTextEncoder2OnlyAndGivesLibtorchsImageToImage()
    {
        using var folder = new TinyXlFolder();
        folder.MakeRefiner();
        var target = Path.Combine(Directory.CreateTempSubdirectory("ld-onnx-refiner-").FullName, "refiner");
        try
        {
            using var scope = DisposeScope.Enter();
            using var torch = StableDiffusionPipeline.FromPretrained(folder.Path);
            StableDiffusionOnnxExport.Export(torch, target);
            Assert.Equal(["model_index.json", "scheduler", "text_encoder_2", "tokenizer_2", "unet", "vae_decoder", "vae_encoder"],
                Directory.GetFileSystemEntries(target).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            var index = ModelIndex.Load(target);
            Assert.Equal("ORTStableDiffusionXLImg2ImgPipeline", index.ClassName);
            Assert.True(index.Flag("requires_aesthetics_score", false));
            Assert.False(index.Components.ContainsKey("text_encoder"));

            using var onnx = OnnxStableDiffusion.FromPretrained(target, OnnxFixture.Engine);
            Assert.True(onnx.IsRefiner);
            var init = RgbImage.FromUnitTensor(Tensors.Rand([1, 3, 64, 64], new Generator(3)))[0];
            var request = new ImageToImageRequest(new GenerationRequest { Prompt = "a horse", NegativePrompt = "blurry", Steps = 4, GuidanceScale = 5, Seed = 5 }, init)
            {
                Strength = 0.5,
                Xl = new XlOptions { AestheticScore = 7, NegativeAestheticScore = 2 },
            };
            using var expected = torch.ImageToImage(request);
            using var actual = onnx.ImageToImage(request);
            var error = TensorAssert.Close(actual.Latents, expected.Latents, 1e-4, 1e-4, "refiner img2img latents");
            output.WriteLine($"refiner export (5 time ids with the aesthetic score, text_encoder_2 only), img2img: latents max |Δ| {error:g3} vs libtorch");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(target)!, recursive: true);
        }
    }

    [Fact]
    public void AnSdxlFolderWithoutTextEncoder2IsOneLine() => exported.WithCopy(copy =>
    {
        Directory.Delete(Path.Combine(copy, "text_encoder_2"), recursive: true);
        var e = Assert.Throws<InvalidDataException>(() => OnnxStableDiffusion.FromPretrained(copy, OnnxFixture.Engine));
        Assert.Contains("text_encoder_2/model.onnx", e.Message);
        Assert.Contains("ORTStableDiffusionXLPipeline", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    });

    [Fact]
    public void AUNetWithoutTextEmbedsInAnSdxlFolderIsOneLine() => exported.WithCopy(copy =>
    {
        // the Stable Diffusion golden export's U-Net (sample, timestep, encoder_hidden_states only) in the SDXL folder
        File.Copy(OnnxFixture.Graph("unet"), Path.Combine(copy, "unet", OnnxStableDiffusion.ModelFile), overwrite: true);
        var e = Assert.Throws<InvalidDataException>(() => OnnxStableDiffusion.FromPretrained(copy, OnnxFixture.Engine));
        Assert.Contains("not an SDXL U-Net", e.Message);
        Assert.Contains("text_embeds and time_ids", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    });

    [Fact]
    public void AnSdxlUNetInAStableDiffusionFolderIsOneLineAndItsDenoiserRefusesMissingConditions() => exported.WithCopy(copy =>
    {
        // without text_encoder_2 and with an SD model_index.json, the SDXL U-Net cannot be fed
        Directory.Delete(Path.Combine(copy, "text_encoder_2"), recursive: true);
        File.WriteAllText(Path.Combine(copy, "model_index.json"), """{ "_class_name": "OnnxStableDiffusionPipeline" }""");
        var e = Assert.Throws<InvalidDataException>(() => OnnxStableDiffusion.FromPretrained(copy, OnnxFixture.Engine));
        Assert.Contains("text_embeds and time_ids", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        using var unet = OnnxDenoiser.Open(Path.Combine(copy, "unet", OnnxStableDiffusion.ModelFile), new LatentUNet.UNet2DConditionModelConfig(), OnnxFixture.Engine);
        using var scope = DisposeScope.Enter();
        var missing = Assert.Throws<ArgumentException>(() => unet.Forward(Tensors.Zeros([1, 4, 8, 8]), 1, new DenoiserConditioning(Tensors.Zeros([1, 77, 96]))));
        Assert.Contains("text_embeds, time_ids", missing.Message);
    });
}

using LatentDiffusion.Onnx.Export;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>
/// The tiny pipeline exported by our own exporter (every graph emitted from the module tree) runs in ONNX Runtime and gives
/// the golden of check 13, libtorch's numbers for txt2img and img2img, and the text encoder's component golden.
/// </summary>
public sealed class PipelineExportTests : IClassFixture<PipelineExportTests.Exported>
{
    public sealed class Exported : IDisposable
    {
        public string Torch { get; } = TinyStableDiffusionFolder.Assemble(Directory.CreateTempSubdirectory("ld-sd-tiny-").FullName);
        public string Onnx { get; }

        public Exported()
        {
            Onnx = Path.Combine(Directory.CreateTempSubdirectory("ld-onnx-exported-").FullName, "sd_tiny_exported");
            using var pipe = StableDiffusionPipeline.FromPretrained(Torch);
            StableDiffusionOnnxExport.Export(pipe, Onnx);
        }

        public void Dispose()
        {
            Directory.Delete(Torch, recursive: true);
            Directory.Delete(Path.GetDirectoryName(Onnx)!, recursive: true);
        }
    }

    private readonly Exported exported;
    private readonly ITestOutputHelper output;

    public PipelineExportTests(Exported exported, ITestOutputHelper output) => (this.exported, this.output) = (exported, output);

    [Fact]
    public void TheFolderHasDiffusersOnnxLayout()
    {
        Assert.Equal(["model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae_decoder", "vae_encoder"],
            Directory.GetFileSystemEntries(exported.Onnx).Select(Path.GetFileName).Order());
        Assert.Equal("OnnxStableDiffusionPipeline", ModelIndex.Load(exported.Onnx).ClassName);
        foreach (var part in new[] { "text_encoder", "unet", "vae_decoder", "vae_encoder" })
            Assert.True(File.Exists(Path.Combine(exported.Onnx, part, "config.json")));
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(exported.Onnx)!, ".*"));
    }

    [Fact]
    public void TextToImageOfTheExportMatchesTheGoldenOfCheck13()
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/sd_txt2img_pndm.safetensors"));
        using var pipe = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        var request = new GenerationRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 5,
            Latents = golden.Load("input.latents"),
        };
        using var result = pipe.TextToImage(request, noise: new QueueNoise([]));
        Assert.Equal((64, 64), (result.Images[0].Width, result.Images[0].Height)); // sample_size from the exported config.json
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 3e-4, 1e-4, "latents");
        var image = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"our export, check 13: latents max |Δ| {latents:g3} (atol 3e-4), image {image:g3} (atol 1e-4)");
    }

    [Fact]
    public void ImageToImageOfTheExportGivesLibtorchsLatentsWithTheSameSeed()
    {
        using var scope = DisposeScope.Enter();
        using var torch = StableDiffusionPipeline.FromPretrained(exported.Torch);
        using var onnx = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        var init = RgbImage.FromUnitTensor(Tensors.Rand([1, 3, 64, 64], new Generator(3)))[0];
        var request = new ImageToImageRequest(new GenerationRequest { Prompt = "a (horse:1.2)", Steps = 4, Seed = 11, Sampler = "euler_a" }, init) { Strength = 0.6 };
        using var expected = torch.ImageToImage(request);
        using var actual = onnx.ImageToImage(request);
        var error = TensorAssert.Close(actual.Latents, expected.Latents, 3e-4, 1e-4, "img2img latents");
        output.WriteLine($"our export, img2img (seeded posterior sample through latent_parameters): latents max |Δ| {error:g3} vs libtorch");
    }

    [Fact]
    public void ClipSkipTwoOnTheExportGivesLibtorchsLatents()
    {
        using var scope = DisposeScope.Enter();
        using var torch = StableDiffusionPipeline.FromPretrained(exported.Torch);
        using var onnx = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        var request = new GenerationRequest { Prompt = "a photograph of an astronaut", Steps = 3, Seed = 4, ClipSkip = 2 };
        using var expected = torch.TextToImage(request);
        using var actual = onnx.TextToImage(request);
        using var unskipped = onnx.TextToImage(request with { ClipSkip = 1 });
        var error = TensorAssert.Close(actual.Latents, expected.Latents, 3e-4, 1e-4, "clip skip 2");
        Assert.True(TensorAssert.MaxAbsDifference(actual.Latents, unskipped.Latents) > 1e-2, "clip skip 2 must change the result");
        output.WriteLine($"our export, clip skip 2 (hidden_states.1 through the final layer norm read from the file): latents max |Δ| {error:g3} vs libtorch");
        Assert.Equal("Clip skip: 2", actual.Parameters[0].ToString().Split(", ").Single(p => p.StartsWith("Clip skip", StringComparison.Ordinal)));
    }

    [Fact]
    public void TheExportedTextEncoderMatchesTheComponentGoldenWithClipSkipRange()
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("textencoder/clip/text_encoder.safetensors"));
        using var pipe = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        var hidden = pipe.Models.TextEncoder.EncodePrompt(golden.Load("input.input_ids"), null, 0);
        var error = TensorAssert.Close(hidden, golden.Load("output.last_hidden_state"), 1e-4, 1e-4, "last_hidden_state");
        output.WriteLine($"our export, text encoder: max |Δ| {error:g3} (atol 1e-4)");
        Assert.Equal(2, pipe.Models.TextEncoder.NumLayers); // from the exported config.json
    }

    [Fact]
    public void AFloat16ExportRunsWithConversionsAtTheBoundary()
    {
        var folder = Path.Combine(Directory.CreateTempSubdirectory("ld-onnx-fp16-").FullName, "fp16");
        using (var torch = StableDiffusionPipeline.FromPretrained(exported.Torch))
            StableDiffusionOnnxExport.Export(torch, folder, new OnnxExportOptions { Fp16 = true, Opset = 18 });
        using var half = OnnxStableDiffusion.FromPretrained(folder, OnnxFixture.Engine);
        using var full = OnnxStableDiffusion.FromPretrained(exported.Onnx, OnnxFixture.Engine);
        var request = new GenerationRequest { Prompt = "a horse", Steps = 2, Seed = 1 };
        using var a = half.TextToImage(request);
        using var b = full.TextToImage(request);
        Assert.Equal(DType.Float32, a.Latents.DType);
        // float16 keeps about three significant digits: two steps stay within a few hundredths of float32
        var error = TensorAssert.MaxAbsDifference(a.Latents, b.Latents);
        output.WriteLine($"fp16 export vs f32 export: latents max |Δ| {error:g3}");
        Assert.InRange(error, 1e-6, 5e-2); // not bit-equal: the graph really computes in float16
        Directory.Delete(Path.GetDirectoryName(folder)!, recursive: true);
    }
}

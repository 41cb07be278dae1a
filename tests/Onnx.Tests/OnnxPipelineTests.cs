using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Onnx.Tests;

/// <summary>
/// The ONNX engine inside the one Stable Diffusion pipeline: the same request gives the libtorch engine's numbers (seeded
/// noise, an ancestral sampler, A1111 emphasis, batches), and previews, cancellation, img2img and tensor hygiene work.
/// </summary>
[Collection(LiveTensorCount.Name)]
public sealed class OnnxPipelineTests(ITestOutputHelper output)
{
    private sealed class SyncProgress(Action<GenerationProgress> report) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value) => report(value);
    }

    [Fact]
    public void TheSameRequestGivesTheLibtorchEnginesLatents()
    {
        var folder = TinyStableDiffusionFolder.Assemble(Directory.CreateTempSubdirectory("ld-sd-tiny-").FullName);
        using var torch = StableDiffusionPipeline.FromPretrained(folder);
        using var onnx = OnnxFixture.Load();
        var request = new GenerationRequest
        {
            Prompt = "an (astronaut:1.3) riding a [horse]",
            NegativePrompt = "blurry",
            Steps = 4,
            Sampler = "euler_a",
            Seed = 7,
            NumImages = 2,
            Width = 64,
            Height = 64,
        };
        using var expected = torch.TextToImage(request);
        using var actual = onnx.TextToImage(request);
        var latents = TensorAssert.Close(actual.Latents, expected.Latents, 3e-4, 1e-4, "latents");
        var pixels = TensorAssert.Close(actual.Pixels, expected.Pixels, 1e-4, 1e-4, "pixels");
        output.WriteLine($"onnx vs libtorch: latents max |Δ| {latents:g3}, pixels {pixels:g3}");
        Assert.Equal(expected.Parameters[1].ToString().Replace("Model: " + torch.ModelName, ""), actual.Parameters[1].ToString().Replace("Model: sd_tiny_onnx", ""));
    }

    [Fact]
    public void PreviewsCancellationAndNoLeakedTensors()
    {
        using var pipe = OnnxFixture.Load();
        var request = new GenerationRequest { Prompt = "a horse", Steps = 3, Seed = 1, Sampler = "euler", PreviewEvery = 1, Width = 64, Height = 64 };
        using (var warm = pipe.TextToImage(request with { PreviewEvery = 0 })) { }
        var before = LiveTensorCount.Settled();
        var previews = new List<RgbImage>();
        using (var result = pipe.TextToImage(request, new SyncProgress(p => previews.Add(p.Preview!))))
            Assert.Equal((64, 64), (result.Images[0].Width, result.Images[0].Height));
        Assert.Equal(3, previews.Count);
        Assert.All(previews, p => Assert.NotNull(p));
        Assert.Equal(before, LiveTensorCount.Settled());

        using var cancel = new CancellationTokenSource();
        var steps = 0;
        Assert.Throws<OperationCanceledException>(() => pipe.TextToImage(request with { Steps = 5, PreviewEvery = 0 },
            new SyncProgress(_ => { if (++steps == 2) cancel.Cancel(); }), cancel.Token));
        Assert.Equal(2, steps);
        Assert.Equal(before, LiveTensorCount.Settled());
    }

    [Fact]
    public void ImageToImageEncodesWithTheVaeEncoderGraph()
    {
        using var pipe = OnnxFixture.Load();
        using var scope = DisposeScope.Enter();
        var init = RgbImage.FromUnitTensor(Tensors.Rand([1, 3, 64, 64], new Generator(3)))[0];
        using var result = pipe.ImageToImage(new ImageToImageRequest(new GenerationRequest { Prompt = "a horse", Steps = 4, Seed = 2, Width = 64, Height = 64 }, init) { Strength = 0.5 });
        Assert.Equal((64, 64), (result.Images[0].Width, result.Images[0].Height));
        Assert.Equal(0.5, result.Parameters[0].Strength);
        Assert.All(result.Latents.ToArray<float>(), v => Assert.True(float.IsFinite(v)));
    }
}

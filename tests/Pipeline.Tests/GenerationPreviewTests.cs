using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Pipeline.StableDiffusion.Preview;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public sealed class GenerationPreviewTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Fact]
    public void PreviewsComeEveryNStepsAndAtTheLastWhichIsTheFinalImage()
    {
        using var pipe = tiny.Load();
        var reports = new List<GenerationProgress>();
        // Euler's last step goes to σ = 0, where the next sample is the denoised estimate itself.
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "a red sneaker", Steps = 5, Sampler = "euler", PreviewEvery = 2, NumImages = 2 },
            new SyncProgress(reports.Add));

        Assert.Equal([false, true, false, true, true], reports.Select(r => r.Preview is not null));
        var last = reports[^1].Preview!;
        var final = result.Images[0];
        Assert.Equal((final.Width, final.Height), (last.Width, last.Height));
        var largest = final.Pixels.Zip(last.Pixels, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(largest <= 1, $"the last preview differs from the image by {largest} levels");
        Assert.NotEqual(reports[1].Preview!.Pixels, last.Pixels);
    }

    [Fact]
    public void WithoutAProgressOrAnIntervalThereAreNoPreviews()
    {
        using var pipe = tiny.Load();
        var reports = new List<GenerationProgress>();
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 3, Sampler = "euler" }, new SyncProgress(reports.Add));

        Assert.Equal(3, reports.Count);
        Assert.All(reports, r => Assert.Null(r.Preview));
    }

    [Fact]
    public void ATinyAutoencoderDecodesThePreviewsWhenGiven()
    {
        using var pipe = tiny.Load();
        using var generator = new Generator(5);
        using var taesd = new AutoencoderTiny(new AutoencoderTinyConfig { LatentChannels = 4 }, generator);
        pipe.PreviewDecoder = new TinyAutoencoderPreviewDecoder(taesd);
        var reports = new List<GenerationProgress>();
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 2, Sampler = "pndm", PreviewEvery = 1 }, new SyncProgress(reports.Add));

        Assert.All(reports, r => Assert.NotNull(r.Preview));
        using var latents = result.Latents.Narrow(0, 0, 1);
        var expected = new TinyAutoencoderPreviewDecoder(taesd).Decode(latents);
        Assert.Equal((result.Images[0].Width, result.Images[0].Height), (expected.Width, expected.Height));
        // PNDM gives no denoised estimate, so the last preview shows the final latents.
        Assert.Equal(expected.Pixels, reports[^1].Preview!.Pixels);
        Assert.NotEqual(result.Images[0].Pixels, reports[^1].Preview!.Pixels); // not the pipeline's own VAE
    }

    [Fact]
    public void ANegativeIntervalIsRefused()
    {
        using var pipe = tiny.Load();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", PreviewEvery = -1 }));
        Assert.Contains("preview interval", e.Message);
    }
}

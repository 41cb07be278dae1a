using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>The SDE samplers in the pipeline on the tiny model: a seed reproduces, text-to-image and image-to-image run.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class DpmSolverSdePipelineTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Theory]
    [InlineData("dpmpp_2m_sde", "DPM++ 2M SDE", "Uniform")]
    [InlineData("dpmpp_2m_sde_karras", "DPM++ 2M SDE", "Karras")]
    [InlineData("dpmpp_3m_sde", "DPM++ 3M SDE", "Uniform")]
    [InlineData("dpmpp_sde", "DPM++ SDE", "Uniform")]
    [InlineData("dpmpp_sde_karras", "DPM++ SDE", "Karras")]
    public void ASeedReproducesTheImageAndThePngNamesTheSampler(string sampler, string display, string schedule)
    {
        using var pipe = tiny.Load();
        var request = new GenerationRequest { Prompt = "x", Steps = 3, Seed = 5, Sampler = sampler };
        using var a = pipe.TextToImage(request);
        using var b = pipe.TextToImage(request);
        using var c = pipe.TextToImage(request with { Seed = 6 });
        Assert.True(a.Latents.Equal(b.Latents));
        Assert.False(a.Latents.Equal(c.Latents));
        Assert.Equal((display, schedule), (a.Parameters[0].Sampler, a.Parameters[0].ScheduleType));

        var init = RgbImage.Filled(32, 32, new Rgb(200, 40, 40));
        using var i2i = pipe.ImageToImage(new ImageToImageRequest { Prompt = "x", InitImage = init, Strength = 0.6, Steps = 5, Seed = 5, Sampler = sampler });
        Assert.Equal(0, i2i.Latents.IsFinite().LogicalNot().Sum().Item());
    }
}

using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// The VAE's scale factor comes from the VAE, not a literal 8: the embedded model's VAE (three blocks)
/// downsamples by 4, so its sizes are multiples of 4 and its latents a quarter of the image.
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class VaeScaleFactorTests
{
    private static StableDiffusionPipeline LoadEmbedded() =>
        StableDiffusionPipeline.FromPretrained(Path.Combine(SharedData.RepositoryRoot, "models", "fashion-colours"));

    [Fact]
    public void TheEmbeddedModelTakesSizesInMultiplesOfFourAndItsLatentsAreAQuarterOfTheImage()
    {
        using var pipe = LoadEmbedded();
        Assert.Equal(4, pipe.VaeScaleFactor);
        var request = new GenerationRequest { Prompt = "a red sneaker", Steps = 1, Seed = 1, Width = 36, Height = 28 };
        using var drawn = pipe.TextToImage(request);
        Assert.Equal((36, 28), (drawn.Images[0].Width, drawn.Images[0].Height));
        Assert.Equal([1L, 4, 7, 9], drawn.Latents.Shape);

        using var given = Tensors.Zeros([1, 4, 7, 9]);
        using var fromLatents = pipe.TextToImage(request with { Latents = given });
        Assert.Equal((36, 28), (fromLatents.Images[0].Width, fromLatents.Images[0].Height));

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(request with { Width = 34 }));
        Assert.Equal("Width", e.ParamName);
        Assert.StartsWith("width must be a positive multiple of 4", e.Message);
    }

    [Fact]
    public void ImageToImageRoundsTheInitImageDownToAMultipleOfTheVaeFactor()
    {
        using var pipe = LoadEmbedded();
        var init = RgbImage.Filled(38, 30, new Rgb(200, 40, 40));
        using var result = pipe.ImageToImage(new ImageToImageRequest { Prompt = "a red bag", InitImage = init, Strength = 0.5, Steps = 2, Seed = 1 });
        Assert.Equal((36, 28), (result.Images[0].Width, result.Images[0].Height));

        var tiny = RgbImage.Filled(3, 30, new Rgb(200, 40, 40));
        var e = Assert.Throws<ArgumentException>(() => pipe.ImageToImage(new ImageToImageRequest { Prompt = "x", InitImage = tiny, Steps = 1 }));
        Assert.Contains("at least 4x4", e.Message);
    }
}

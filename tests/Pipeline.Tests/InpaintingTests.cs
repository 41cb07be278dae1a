using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>Inpainting beyond the goldens: loading 9-channel models, A1111's options, and bad input.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class InpaintingTests(TinyStableDiffusion tiny, TinyInpainting inpainting) : IClassFixture<TinyStableDiffusion>, IClassFixture<TinyInpainting>
{
    private static readonly RgbImage Photo = Gradient(64, 64);

    internal static RgbImage Gradient(int width, int height)
    {
        var image = RgbImage.Filled(width, height, Rgb.Black);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) image.SetPixel(x, y, new Rgb((byte)(4 * x), (byte)(4 * y), (byte)(255 - 2 * x)));
        return image;
    }

    /// <summary>Black with a white rectangle [x, x + w) × [y, y + h).</summary>
    internal static RgbImage Rectangle(int width, int height, int x, int y, int w, int h)
    {
        var mask = RgbImage.Filled(width, height, Rgb.Black);
        for (int j = y; j < y + h; j++)
            for (int i = x; i < x + w; i++) mask.SetPixel(i, j, Rgb.White);
        return mask;
    }

    private static InpaintRequest Request(RgbImage? mask = null) => new()
    {
        Prompt = "a horse", Steps = 2, Seed = 5, InitImage = Photo, MaskImage = mask ?? Rectangle(64, 64, 16, 20, 24, 16), Strength = 0.75,
    };

    [Fact]
    public void ANineChannelModelRefusesTextToImageAndImageToImageInOneLine()
    {
        using var pipe = inpainting.Load();
        var e = Assert.Throws<InvalidOperationException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 1 }));
        Assert.Contains("inpainting model (9 input channels): it needs an init image and a mask", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Throws<InvalidOperationException>(() => pipe.ImageToImage(new ImageToImageRequest { Prompt = "x", Steps = 1, InitImage = Photo }));
        using var result = pipe.Inpaint(Request());
        Assert.Equal((64, 64), (result.Images[0].Width, result.Images[0].Height));
        // without guidance the U-Net gets one row of latents, mask and masked-image latents
        using var unguided = pipe.Inpaint(Request() with { GuidanceScale = 1 });
        Assert.False(unguided.Latents.Equal(result.Latents));

        // given latents are the noise (diffusers: the start is latents · init_noise_sigma) and the image is not encoded:
        // the masked image's VAE sample is the only draw
        using var scope = DisposeScope.Enter();
        using var g = new Generator(1);
        var queue = new QueueNoise(Tensors.Randn([1, 4, 8, 8], g));
        using var given = pipe.Inpaint(Request() with { Latents = Tensors.Randn([1, 4, 8, 8], g) }, noise: queue);
        Assert.Equal(0, queue.Remaining);
    }

    [Fact]
    public void ASingleFileInpaintingCheckpointGetsNineInputChannelsFromItsFirstConvolution()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(3);
        // the tiny model's layout with conv_in widened to 4 + 1 + 4 channels, as SD1.5-inpainting's is
        var path = SingleFilePipelineTests.WriteTinySingleFile(tiny, (name, t) =>
            name == LdmKeyMapping.UNetPrefix + "input_blocks.0.0.weight" ? Tensor.Cat([t, Tensors.Randn([t.Shape[0], 5, 3, 3], g) * 0.05], 1) : t);
        try
        {
            LoadConvertAndReload(path);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    private void LoadConvertAndReload(string path)
    {
        using var pipe = StableDiffusionPipeline.FromSingleFile(path, new PipelineOptions
        {
            ConfigSource = tiny.Directory,
            CheckpointKind = new CheckpointKind(ModelFamily.StableDiffusion1, "epsilon"),
        });
        Assert.Equal(9, pipe.Models.Denoiser.InChannels);
        Assert.Throws<InvalidOperationException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 1 }));
        using var result = pipe.Inpaint(Request());
        Assert.Single(result.Images);

        // converted to a folder it is a StableDiffusionInpaintPipeline that reloads as the same model
        var folder = Path.Combine(Path.GetDirectoryName(path)!, "converted");
        pipe.Save(folder);
        Assert.Equal("StableDiffusionInpaintPipeline", ModelIndex.Load(folder).ClassName);
        using var reloaded = StableDiffusionPipeline.FromPretrained(folder);
        Assert.True(reloaded.IsInpaintingModel);
        using var again = reloaded.Inpaint(Request());
        Assert.True(again.Latents.Equal(result.Latents));
    }

    [Theory]
    [InlineData(1024, 9, ModelFamily.StableDiffusion2, "epsilon")] // stable-diffusion-2-inpainting (diffusers' inpainting_v2)
    [InlineData(1024, 4, ModelFamily.StableDiffusion2, "v_prediction")]
    [InlineData(768, 9, ModelFamily.StableDiffusion1, "epsilon")]
    public void CheckpointKindAndInputChannelsAreInferredFromTheShapes(long contextWidth, long inChannels, ModelFamily family, string prediction)
    {
        var shapes = new Dictionary<string, long[]>
        {
            [LdmKeyMapping.UNetPrefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [320, contextWidth],
            [LdmKeyMapping.UNetPrefix + "input_blocks.0.0.weight"] = [320, inChannels, 3, 3],
        };
        Assert.Equal(new CheckpointKind(family, prediction), CheckpointKind.Infer(shapes, "x.safetensors"));
        Assert.Equal((int)inChannels, CheckpointKind.UNetInChannels(shapes));
    }

    [Fact]
    public void AnAllBlackMaskIsRefusedInOneLine()
    {
        using var pipe = tiny.Load();
        var e = Assert.Throws<ArgumentException>(() => pipe.Inpaint(Request(RgbImage.Filled(64, 64, new Rgb(100, 100, 100)))));
        Assert.StartsWith("the mask is all black: nothing to inpaint", e.Message);
        Assert.Equal("MaskImage", e.ParamName);
    }

    [Fact]
    public void AMaskOfAnotherSizeIsResizedToTheImage()
    {
        using var pipe = tiny.Load();
        using var same = pipe.Inpaint(Request(Rectangle(64, 64, 16, 16, 32, 32)));
        using var half = pipe.Inpaint(Request(Rectangle(32, 32, 8, 8, 16, 16)));
        // a sharp-edged rectangle scaled ×2 with Lanczos binarises to the same mask: the same image
        Assert.True(same.Latents.Equal(half.Latents));
    }

    [Fact]
    public void TheKnownRegionStaysTheImageAndMaskBlurPastesTheOriginalBackThroughTheBlurredMask()
    {
        using var pipe = tiny.Load();
        var mask = Rectangle(64, 64, 16, 16, 32, 32);
        using var sharp = pipe.Inpaint(Request(mask));
        using var blurred = pipe.Inpaint(Request(mask) with { MaskBlur = 4 });
        // far from the mask the blurred paste-back is the original itself; inside it the generated pixels
        Assert.Equal(Photo.GetPixel(2, 2), blurred.Images[0].GetPixel(2, 2));
        Assert.Equal(blurred.Images[0].GetPixel(32, 32), RgbImage.FromUnitTensor(blurred.Pixels.Permute(0, 3, 1, 2))[0].GetPixel(32, 32));
        // without blur the result is diffusers' output as it is
        Assert.Equal(sharp.Images[0].Pixels, RgbImage.FromUnitTensor(sharp.Pixels.Permute(0, 3, 1, 2))[0].Pixels);
        Assert.Contains(new KeyValuePair<string, string>("Mask blur", "4"), blurred.Parameters[0].Extra);
    }

    [Fact]
    public void OnlyMaskedWorksOnTheCropAtFullSizeAndLeavesTheRestOfTheImageUntouched()
    {
        using var pipe = tiny.Load();
        var large = Gradient(128, 96);
        var request = Request(Rectangle(128, 96, 90, 60, 12, 10)) with { InitImage = large, OnlyMasked = true, Padding = 8, Width = 64, Height = 64 };
        using var result = pipe.Inpaint(request);
        var image = result.Images[0];
        Assert.Equal((128, 96), (image.Width, image.Height));
        // crop: (82, 52)–(110, 78) padded, widened to the 1:1 output → x 82..110, y 51..79
        Assert.Equal(InpaintMask.CropRegion(InpaintMask.ToGray(request.MaskImage), 64, 64, 8), (82, 51, 110, 79));
        for (int y = 0; y < 96; y++)
            for (int x = 0; x < 128; x++)
                if (x < 90 || x >= 102 || y < 60 || y >= 70) Assert.Equal(large.GetPixel(x, y), image.GetPixel(x, y));
        Assert.Equal([1L, 4, 8, 8], result.Latents.Shape); // the crop was generated at 64×64
        var extra = result.Parameters[0].Extra;
        Assert.Contains(new KeyValuePair<string, string>("Inpaint area", "Only masked"), extra);
        Assert.Contains(new KeyValuePair<string, string>("Masked area padding", "8"), extra);
        Assert.Contains("Inpaint area: Only masked, Masked area padding: 8", result.Parameters[0].Format());
    }

    [Theory]
    [InlineData(MaskedContent.Original, 3, null)]
    [InlineData(MaskedContent.LatentNothing, 3, "latent nothing")]
    [InlineData(MaskedContent.LatentNoise, 4, "latent noise")]
    [InlineData(MaskedContent.Fill, 3, "fill")]
    public void MaskedContentChangesTheStartAndLatentNoiseDrawsLast(MaskedContent content, int draws, string? recorded)
    {
        using var pipe = tiny.Load();
        var counter = new GeneratorNoise(9);
        using var original = pipe.Inpaint(Request(), noise: new GeneratorNoise(9));
        using var result = pipe.Inpaint(Request() with { MaskedContent = content }, noise: counter);
        Assert.Equal(draws, counter.Drawn);
        Assert.Equal(content == MaskedContent.Original, original.Latents.Equal(result.Latents));
        var field = result.Parameters[0].Extra.Where(f => f.Key == "Masked content").Select(f => f.Value).SingleOrDefault();
        Assert.Equal(recorded, field);
    }

    [Fact]
    public void EverySamplerKindEndsWithTheImageLatentsOutsideTheMask()
    {
        // after the last step a 4-channel model's latents are the image latents where the latent mask is 0; the image's
        // VAE sample is the first draw, so every sampler (first or second order, σ- or α-based) ends the same there
        using var pipe = tiny.Load();
        var mask = Rectangle(64, 64, 0, 0, 32, 64); // the left half: latent columns 0–3
        var keptColumns = new List<Tensor>();
        foreach (var sampler in new[] { "pndm", "euler", "dpmpp_2m_karras", "heun", "euler_a" })
        {
            using var result = pipe.Inpaint(Request(mask) with { Sampler = sampler, Steps = 3 });
            keptColumns.Add(result.Latents.Narrow(3, 4, 4).Contiguous().DetachFromDisposeScope());
        }
        foreach (var other in keptColumns.Skip(1)) TensorAssert.Close(other, keptColumns[0], 1e-6, 0, "latents outside the mask");
        foreach (var t in keptColumns) t.Dispose();
    }

    [Theory]
    [InlineData("euler")] // interrupted: its prediction of the clean latents
    [InlineData("pndm")]  // none: the sample itself
    public void AnInterruptedRunKeepsTheImageLatentsOutsideTheMaskAsAFinishedOneDoes(string sampler)
    {
        using var pipe = tiny.Load();
        var request = Request(Rectangle(64, 64, 0, 0, 32, 64)) with { Sampler = sampler, Steps = 8 }; // latent columns 0–3 repainted
        using var finished = pipe.Inpaint(request);
        using var interrupt = new CancellationTokenSource();
        using var partial = pipe.Inpaint(request, new Recorder<GenerationProgress>(p =>
        {
            if (p.Step == 2) interrupt.Cancel();
        }), interrupt: interrupt.Token);
        Assert.True(partial.Interrupted);

        using var scope = DisposeScope.Enter();
        // outside the mask: the image latents, exactly as the finished run ends with them
        Assert.True(partial.Latents.Narrow(3, 4, 4).Equal(finished.Latents.Narrow(3, 4, 4)), "the latents outside the mask");
        // under it: two steps in, not the finished image
        Assert.True(TensorAssert.MaxAbsDifference(partial.Latents.Narrow(3, 0, 4), finished.Latents.Narrow(3, 0, 4)) > 1e-2, "the repainted latents");
    }

    [Fact]
    public void TheSameSeedGivesTheSameImage()
    {
        using var pipe = tiny.Load();
        using var a = pipe.Inpaint(Request());
        using var b = pipe.Inpaint(Request());
        using var c = pipe.Inpaint(Request() with { Seed = 6 });
        Assert.True(a.Latents.Equal(b.Latents));
        Assert.False(a.Latents.Equal(c.Latents));
        // image i of a batch draws from seed + i, so it is the single run with that seed (up to batched GEMM rounding)
        using var batch = pipe.Inpaint(Request() with { NumImages = 2 });
        using var second = batch.Latents.Narrow(0, 1, 1);
        TensorAssert.Close(second, c.Latents, 1e-3, 1e-3, "image 1 of the batch vs seed + 1");
        Assert.Equal(6, batch.Parameters[1].Seed);
    }

    [Theory]
    [InlineData(0.0, 0, 0, "Strength")]
    [InlineData(0.5, -1, 0, "MaskBlur")]
    [InlineData(0.5, 0, -1, "Padding")]
    public void OutOfRangeSettingsAreRefusedByName(double strength, int blur, int padding, string field)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => (Request() with { Strength = strength, MaskBlur = blur, Padding = padding }).Validate());
        Assert.Equal(field, e.ParamName);
    }
}

[Collection(LiveTensorCount.Name)]
public sealed class InpaintingLeakTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Fact]
    public void InpaintingLeavesNoTensorBehind()
    {
        using var pipe = tiny.Load();
        var request = new InpaintRequest
        {
            Prompt = "x", Steps = 3, InitImage = RgbImage.Filled(64, 64, new Rgb(9, 9, 9)), MaskImage = InpaintingTests.Rectangle(64, 64, 8, 8, 16, 16),
            Strength = 0.75, MaskedContent = MaskedContent.LatentNoise,
        };
        pipe.Inpaint(request).Dispose(); // warm-up: lazily created buffers
        var before = LiveTensorCount.Settled();
        pipe.Inpaint(request).Dispose();
        Assert.Equal(before, LiveTensorCount.Settled());
    }
}

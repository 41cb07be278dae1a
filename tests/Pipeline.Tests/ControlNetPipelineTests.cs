using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Golden v2 #8: diffusers' StableDiffusionControlNetPipeline (sd_tiny + controlnet_tiny, PNDM, 4 steps, CFG 7.5), and the
/// ControlNet options around it: guess mode, guidance window, several ControlNets, img2img, a ControlNet for another model.
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class ControlNetPipelineTests(TinyStableDiffusion tiny, ITestOutputHelper output) : IClassFixture<TinyStableDiffusion>
{
    public static string ControlNetDir => Path.Combine(SharedData.RepositoryRoot, "tests/fixtures/latentunet/controlnet_tiny");

    private static SafeTensorsFile Golden() => SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/controlnet_txt2img_s100.safetensors"));

    private static RgbImage ControlImage(SafeTensorsFile golden)
    {
        using var image = golden.Load("input.control_image_uint8");
        return new RgbImage(64, 64, image.ToArray<byte>());
    }

    private static GenerationRequest Request(SafeTensorsFile golden, params ControlNetUnit[] units) => new()
    {
        Prompt = "a photograph of an astronaut riding a horse",
        NegativePrompt = "blurry, low quality",
        Steps = 4,
        GuidanceScale = 7.5,
        Width = 64,
        Height = 64,
        Latents = golden.Load("input.latents"),
        ControlNets = units,
    };

    [Fact]
    public void TextToImageWithAControlNetMatchesDiffusers()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        using var controlNet = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        var image = ControlImage(golden);
        using var result = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, image)), noise: new QueueNoise([]));

        // every call's residuals (5 PNDM calls) and the control image as the ControlNet saw it
        Assert.Equal(5, controlNet.Calls.Count);
        using var scope = DisposeScope.Enter();
        TensorAssert.Close(golden.Load("debug.control_image_preprocessed"), controlNet.Images[0].Values, controlNet.Images[0].Shape, 0, 0, "control image");
        for (int i = 0; i < 5; i++)
        {
            var (down, mid) = controlNet.Calls[i];
            TensorAssert.Close(golden.Load($"debug.controlnet{i:00}.down_block_res_samples.0"), down[0].Values, down[0].Shape, 2e-4, 1e-4, $"call {i} down 0");
            TensorAssert.Close(golden.Load($"debug.controlnet{i:00}.mid_block_res_sample"), mid.Values, mid.Shape, 2e-4, 1e-4, $"call {i} mid");
        }
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 3e-4, 1e-4, "latents");
        var pixels = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"golden v2 #8 controlnet txt2img: latents max |diff| {latents:E3} (atol 3e-4), image {pixels:E3} (atol 1e-4)");
        Assert.Equal("Module: none, Model: controlnet_tiny, Weight: 1, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced",
            result.Parameters[0].Extra.Single(f => f.Key == "ControlNet 0").Value);
        Assert.Contains("ControlNet 0: \"Module: none, Model: controlnet_tiny, Weight: 1,", result.Parameters[0].Format());
    }

    [Fact]
    public void CropAndResizeCutsTheCentreOfAWiderControlImageAndIsRecordedSo()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        // the golden control image with 32 black columns on each side: its centre crop is the golden image itself
        var inner = ControlImage(golden);
        var wide = new byte[128 * 64 * 3];
        for (int y = 0; y < 64; y++) Array.Copy(inner.Pixels, y * 64 * 3, wide, (y * 128 + 32) * 3, 64 * 3);
        var image = new RgbImage(128, 64, wide);

        using var cropped = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        using var result = pipe.TextToImage(Request(golden, new ControlNetUnit(cropped, image) { ResizeMode = ControlResizeMode.CropAndResize }),
            noise: new QueueNoise([]));
        TensorAssert.Close(golden.Load("debug.control_image_preprocessed"), cropped.Images[0].Values, cropped.Images[0].Shape, 0, 0, "cropped control image");
        Assert.Contains("Resize Mode: Crop and Resize", result.Parameters[0].Extra.Single(f => f.Key == "ControlNet 0").Value);

        using var stretched = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        using var plain = pipe.TextToImage(Request(golden, new ControlNetUnit(stretched, image)), noise: new QueueNoise([]));
        Assert.NotEqual(cropped.Images[0].Values, stretched.Images[0].Values); // stretched, the black bands are in the picture
        Assert.Contains("Resize Mode: Just Resize", plain.Parameters[0].Extra.Single(f => f.Key == "ControlNet 0").Value);
    }

    [Fact]
    public void ResizeAndFillLetterboxesTheWholeImageOnItsMedianBorderColourAndIsRecordedSo()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        // the middle 64 × 32 band of the golden control image: fitted into 64 × 64 unscaled (k = min(64/64, 64/32) = 1),
        // 16 rows of fill above and below
        var inner = ControlImage(golden);
        var band = inner.Crop(0, 16, 64, 32);
        using var filled = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        using var result = pipe.TextToImage(Request(golden, new ControlNetUnit(filled, band) { ResizeMode = ControlResizeMode.ResizeAndFill }),
            noise: new QueueNoise([]));
        Assert.Contains("Resize Mode: Resize and Fill", result.Parameters[0].Extra.Single(f => f.Key == "ControlNet 0").Value);

        // the fill, by sorting (numpy.median of the 2·(64 + 32) border bytes per channel, then astype(uint8))
        var fill = new byte[3];
        for (int c = 0; c < 3; c++)
        {
            var border = new List<int>();
            for (int x = 0; x < 64; x++) { border.Add(band.Pixels[x * 3 + c]); border.Add(band.Pixels[(31 * 64 + x) * 3 + c]); }
            for (int y = 0; y < 32; y++) { border.Add(band.Pixels[y * 64 * 3 + c]); border.Add(band.Pixels[(y * 64 + 63) * 3 + c]); }
            border.Sort();
            fill[c] = (byte)((border[border.Count / 2 - 1] + border[border.Count / 2]) / 2);
        }
        var expected = new float[3 * 64 * 64];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                    expected[(c * 64 + y) * 64 + x] = (y is >= 16 and < 48 ? band.Pixels[((y - 16) * 64 + x) * 3 + c] : fill[c]) / 255f;
        var seen = filled.Images[0];
        Assert.Equal([2L, 3, 64, 64], seen.Shape); // [uncond; cond]
        TensorAssert.Close(seen.Values.Take(expected.Length).ToList(), expected, 1e-7, 0, "filled control image");

        // stretched, the band fills the whole height: another control image
        using var stretched = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        using var plain = pipe.TextToImage(Request(golden, new ControlNetUnit(stretched, band)), noise: new QueueNoise([]));
        Assert.NotEqual(filled.Images[0].Values, stretched.Images[0].Values);
    }

    [Fact]
    public void TwoControlNetsSumTheirResidualsAndTheGuidanceWindowSelectsSteps()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        using var controlNet = pipe.LoadControlNet(ControlNetDir);
        var image = ControlImage(golden);
        using var single = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, image)), noise: new QueueNoise([]));
        // the residuals are linear in the scale: two halves give the whole (MultiControlNet sums them)
        using var halves = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, image) { Scale = 0.5 },
            new ControlNetUnit(controlNet, image) { Scale = 0.5 }), noise: new QueueNoise([]));
        TensorAssert.Close(halves.Latents, single.Latents, 1e-5, 1e-5, "two ControlNets at 0.5 vs one at 1");
        Assert.Equal(2, halves.Parameters[0].Extra.Count(f => f.Key.StartsWith("ControlNet ")));

        // a window that holds none of the 5 calls (i/5 ≥ 0.5 and (i+1)/5 ≤ 0.55 for no i) leaves the plain model
        using var plain = pipe.TextToImage(Request(golden), noise: new QueueNoise([]));
        using var none = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, image) { GuidanceStart = 0.5, GuidanceEnd = 0.55 }),
            noise: new QueueNoise([]));
        Assert.True(none.Latents.Equal(plain.Latents));
        // diffusers' controlnet_keep: end 0.6 keeps calls 0–2 of 5, so the result lies between plain and fully steered
        using var recording = new RecordingControlNet(controlNet, dispose: false);
        using var early = pipe.TextToImage(Request(golden, new ControlNetUnit(recording, image) { GuidanceEnd = 0.6 }), noise: new QueueNoise([]));
        Assert.Equal(3, recording.Calls.Count);
        Assert.True(TensorAssert.MaxAbsDifference(early.Latents, single.Latents) > 1e-4);
        Assert.True(TensorAssert.MaxAbsDifference(early.Latents, plain.Latents) > 1e-4);
    }

    [Fact]
    public void GuessModeRunsTheControlNetOnTheConditionalHalfWithALogRamp()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        using var controlNet = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        var image = ControlImage(golden);
        using var guessed = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, image)) with { GuessMode = true }, noise: new QueueNoise([]));
        Assert.All(controlNet.Inputs, shape => Assert.Equal([1L, 4, 8, 8], shape));
        Assert.All(controlNet.Images, i => Assert.Equal([1L, 3, 64, 64], i.Shape));
        Assert.All(controlNet.GuessModes, Assert.True);
        using var balanced = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, image)), noise: new QueueNoise([]));
        Assert.True(TensorAssert.MaxAbsDifference(guessed.Latents, balanced.Latents) > 1e-4);
        // The first calls see the same latents: guess mode's first residual is logspace(−1, 0, 7)[0] = 0.1 times the
        // conditional half of the balanced one (its last residual, the mid block's, 1 times).
        var (guessDown, guessMid) = controlNet.Calls[0];
        var (fullDown, fullMid) = controlNet.Calls[5];
        using var scope = DisposeScope.Enter();
        var condHalf = Tensor.From(fullDown[0].Values, fullDown[0].Shape).Narrow(0, 1, 1) * 0.1;
        TensorAssert.Close(condHalf, guessDown[0].Values, guessDown[0].Shape, 1e-6, 1e-5, "guess-mode first residual");
        var midHalf = Tensor.From(fullMid.Values, fullMid.Shape).Narrow(0, 1, 1);
        TensorAssert.Close(midHalf, guessMid.Values, guessMid.Shape, 1e-6, 1e-5, "guess-mode mid residual");
        Assert.Contains("Control Mode: ControlNet is more important", guessed.Parameters[0].Extra[0].Value);
    }

    [Fact]
    public void ImageToImageTakesAControlNetAndTheControlImageIsResizedToTheOutput()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        using var controlNet = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        var init = ControlImage(golden);
        var control = init.Resize(100, 40); // stretched back to 64×64 as diffusers' control image processor does
        var request = new ImageToImageRequest(Request(golden) with { Latents = null, Seed = 3 }, init) { Strength = 0.6, ControlNets = [new ControlNetUnit(controlNet, control)] };
        using var steered = pipe.ImageToImage(request);
        using var plain = pipe.ImageToImage(request with { ControlNets = [] });
        Assert.Equal([2L, 3, 64, 64], controlNet.Images[0].Shape);
        Assert.NotEmpty(controlNet.Calls);
        Assert.True(TensorAssert.MaxAbsDifference(steered.Latents, plain.Latents) > 1e-4);
    }

    [Fact]
    public void ACannyPreprocessorRunsOnThePhotoResizedToTheOutput()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        using var controlNet = new RecordingControlNet(pipe.LoadControlNet(ControlNetDir));
        var photo = RgbImage.Load(SharedData.Fixture("pipeline/canny/coffee.png"));
        var canny = new Preprocessors.CannyPreprocessor(50, 120);
        using var result = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, photo) { Preprocessor = canny }), noise: new QueueNoise([]));
        var edges = Preprocessors.CannyDetector.Detect(photo.Resize(64, 64), 50, 120);
        var seen = controlNet.Images[0];
        Assert.Equal([2L, 3, 64, 64], seen.Shape);
        // [uncond; cond] copies of the edge map as 0/1 floats in CHW order
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 64 * 64; i++)
                Assert.Equal(edges.Pixels[3 * i + c] / 255f, seen.Values[c * 64 * 64 + i]);
        Assert.Contains("Module: canny, Model: controlnet_tiny, Weight: 1, Resize Mode: Just Resize, Threshold A: 50, Threshold B: 120,", result.Parameters[0].Extra[0].Value);
    }

    [Fact]
    public void ABFloat16PipelineRunsItsControlNetInBFloat16()
    {
        using var golden = Golden();
        using var pipe = StableDiffusionPipeline.FromPretrained(tiny.Directory, new PipelineOptions { DType = DType.BFloat16 });
        using var controlNet = pipe.LoadControlNet(ControlNetDir);
        Assert.Equal(DType.BFloat16, ((TorchControlNet)controlNet).Module.StateDict().Values.First().DType);
        using var result = pipe.TextToImage(Request(golden, new ControlNetUnit(controlNet, ControlImage(golden))), noise: new QueueNoise([]));
        // bf16 keeps 8 bits of mantissa: the same image as float32 to a few hundredths
        TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 0.05, 0.05, "bf16 image");
    }

    [Fact]
    public void TheMemoryGuardCountsTheControlNets()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        using var controlNet = pipe.LoadControlNet(ControlNetDir);
        var attention = new Memory.AttentionCost(false, null);
        var own = controlNet.EstimateStepBytes(8, 8, 2, 4, attention);
        Assert.InRange(own, 1e3, pipe.Models.Denoiser.EstimateStepBytes(8, 8, 2, 4, attention) * 1.01);
        using var huge = new RecordingControlNet(controlNet, dispose: false, estimate: 1e15);
        var e = Assert.Throws<Memory.MemoryLimitException>(() => pipe.TextToImage(Request(golden, new ControlNetUnit(huge, ControlImage(golden)))));
        Assert.StartsWith("64×64, 1 image: needs about ", e.Message);
    }

    [Fact]
    public void AControlNetForAnotherModelIsRefusedInOneLine()
    {
        using var golden = Golden();
        using var pipe = tiny.Load();
        var config = ControlNetModelConfig.Load(Path.Combine(ControlNetDir, "config.json")) with { CrossAttentionDim = 16 };
        using var other = new TorchControlNet(new ControlNetModel(config), "sd21_canny");
        var e = Assert.Throws<ArgumentException>(() => pipe.TextToImage(Request(golden, new ControlNetUnit(other, ControlImage(golden)))));
        Assert.Equal("sd21_canny: its cross_attention_dim is 16 but the model's is 32: it was made for another base model", e.Message);
        var window = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(Request(golden,
            new ControlNetUnit(other, ControlImage(golden)) { GuidanceStart = 0.8, GuidanceEnd = 0.2 })));
        Assert.Contains("control guidance start (0.8) must be below its end (0.2)", window.Message);
    }
}

/// <summary>Passes every call to a ControlNet and keeps copies (as arrays: the loop's scope frees its tensors) of what it saw and returned.</summary>
internal sealed class RecordingControlNet(IControlNet inner, bool dispose = true, double? estimate = null) : IControlNet
{
    public sealed record Copy(float[] Values, long[] Shape)
    {
        public static Copy Of(Tensor t) => new(t.Float().Contiguous().ToArray<float>(), t.Shape);
    }

    public List<(Copy[] Down, Copy Mid)> Calls { get; } = [];
    public List<Copy> Images { get; } = [];
    public List<long[]> Inputs { get; } = [];
    public List<bool> GuessModes { get; } = [];
    public string Name => inner.Name;
    public bool GlobalPoolConditions => inner.GlobalPoolConditions;
    public void CheckFits(IDenoiser denoiser) => inner.CheckFits(denoiser);
    public double EstimateStepBytes(long latentHeight, long latentWidth, long rows, int elementSize, Memory.AttentionCost attention) =>
        estimate ?? inner.EstimateStepBytes(latentHeight, latentWidth, rows, elementSize, attention);

    public UNetResiduals Forward(Tensor sample, double timestep, Tensor encoderHiddenStates, Tensor controlImage, double conditioningScale, bool guessMode)
    {
        var result = inner.Forward(sample, timestep, encoderHiddenStates, controlImage, conditioningScale, guessMode);
        using (DisposeScope.Enter())
        {
            Calls.Add(([.. result.Down.Select(Copy.Of)], Copy.Of(result.Mid)));
            Images.Add(Copy.Of(controlImage));
        }
        Inputs.Add(sample.Shape);
        GuessModes.Add(guessMode);
        return result;
    }

    public void Dispose()
    {
        if (dispose) inner.Dispose();
    }
}

[Collection(LiveTensorCount.Name)]
public sealed class ControlNetLeakTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Fact]
    public void GenerationWithTwoControlNetsInGuessModeKeepsTheLiveTensorCountFlat()
    {
        using var pipe = tiny.Load();
        using var controlNet = pipe.LoadControlNet(ControlNetPipelineTests.ControlNetDir);
        var image = RgbImage.Filled(48, 40, new Rgb(200, 10, 90));
        var request = new GenerationRequest
        {
            Prompt = "a horse", Steps = 3, Width = 64, Height = 64, NumImages = 2, GuessMode = true,
            ControlNets = [new ControlNetUnit(controlNet, image), new ControlNetUnit(controlNet, image) { Scale = 0.4, GuidanceEnd = 0.5 }],
        };
        pipe.TextToImage(request).Dispose();
        var before = LiveTensorCount.Settled();
        pipe.TextToImage(request).Dispose();
        Assert.Equal(before, LiveTensorCount.Settled());
    }
}

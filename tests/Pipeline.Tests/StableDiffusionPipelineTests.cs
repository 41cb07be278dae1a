using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Check #9 of the goldens: diffusers' StableDiffusionPipeline on the tiny model, end to end, with
/// the golden prompt and initial latents; plus the behaviour around it (img2img, seeds, errors).
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class StableDiffusionPipelineTests : IClassFixture<TinyStableDiffusion>
{
    private readonly TinyStableDiffusion tiny;

    public StableDiffusionPipelineTests(TinyStableDiffusion tiny) => this.tiny = tiny;

    [Theory]
    [InlineData("pndm", "sd_tiny/scheduler/scheduler_config.json", 3e-4)]
    [InlineData("ddim", "schedulers/ddim/scheduler_config.json", 5e-4)]
    public void TextToImageMatchesDiffusers(string name, string schedulerConfig, double latentAtol)
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture($"pipeline/goldens/sd_txt2img_{name}.safetensors"));
        using var pipe = tiny.Load();
        pipe.SchedulerConfig = SchedulerConfig.Load(SharedData.Fixture("pipeline/" + schedulerConfig));

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
        Assert.Equal(golden.Load("input.prompt_ids").ToArray<long>(), pipe.Tokenizer.Encode(request.Prompt).InputIdsInt64());

        using var result = pipe.TextToImage(request, noise: new QueueNoise([]));
        TensorAssert.Close(result.Latents, golden.Load("output.latents"), latentAtol, 1e-4, "latents");
        TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "latents");
        Assert.Single(result.Images);
        Assert.Equal((64, 64), (result.Images[0].Width, result.Images[0].Height));
    }

    [Fact]
    public void SameSeedGivesTheSameImageAndImageIOfABatchEqualsASingleRunWithSeedPlusI()
    {
        using var pipe = tiny.Load();
        var request = new GenerationRequest { Prompt = "a horse", Steps = 3, Seed = 40, NumImages = 2, Sampler = "euler_a" };
        using var batch = pipe.TextToImage(request);
        using var again = pipe.TextToImage(request);
        using var second = pipe.TextToImage(request with { Seed = 41, NumImages = 1 });
        Assert.True(batch.Latents.Equal(again.Latents));
        using var secondOfBatch = batch.Latents.Narrow(0, 1, 1);
        // Same noise, so the same image up to float rounding: a batch of two runs GEMMs blocked differently
        // from a batch of one (1.2e-4 apart on an AMD EPYC; a wrong seed would differ by O(1)).
        TensorAssert.Close(secondOfBatch, second.Latents, atol: 1e-3, rtol: 1e-3, "image 1 of the batch vs a single run with seed + 1");
        Assert.Equal(41, batch.Parameters[1].Seed);
        Assert.Equal("Euler a", batch.Parameters[0].Sampler);
        Assert.Equal(2, batch.Images.Count);
    }

    [Fact]
    public void InitialLatentsAreDrawnLikeTorchRandnWithTheSeed()
    {
        using var pipe = tiny.Load();
        using var g = new Generator(7);
        using var expected = Tensors.Randn([1, 4, 8, 8], g);
        var seen = new List<Tensor>();
        var recorder = new RecordingNoise(new GeneratorNoise(7), seen);
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 1, Seed = 7, Width = 64, Height = 64 }, noise: recorder);
        Assert.True(seen[0].Equal(expected));
    }

    private sealed class RecordingNoise(INoiseSource inner, List<Tensor> seen) : INoiseSource
    {
        public Tensor Next(long[] shape, DType dtype, Device device)
        {
            var t = inner.Next(shape, dtype, device);
            seen.Add(t.Clone().DetachFromDisposeScope());
            return t;
        }
    }

    [Fact]
    public void ImageToImageDrawsPosteriorThenAddNoiseAndRunsTheStrengthRule()
    {
        using var pipe = tiny.Load();
        var init = RgbImage.Filled(64, 48, new Rgb(200, 40, 40));
        var steps = new List<GenerationProgress>();
        var seen = new List<Tensor>();
        using var result = pipe.ImageToImage(
            new ImageToImageRequest { Prompt = "x", InitImage = init, Strength = 0.6, Steps = 5, Sampler = "ddim" },
            new SyncProgress(steps.Add), noise: new RecordingNoise(new GeneratorNoise(3), seen));
        // ⌊5 × 0.6⌋ = 3 denoising steps; sizes follow the init image (rounded down to multiples of 8).
        Assert.Equal(3, steps.Count);
        Assert.Equal((64, 48), (result.Images[0].Width, result.Images[0].Height));
        Assert.Equal(2, seen.Count);
        Assert.Equal([1L, 4, 6, 8], seen[0].Shape);
        Assert.Equal(0.6, result.Parameters[0].Strength);
    }

    [Fact]
    public void CancellationStopsWithinAStep()
    {
        using var pipe = tiny.Load();
        using var cts = new CancellationTokenSource();
        var steps = 0;
        var progress = new SyncProgress(_ => { if (++steps == 2) cts.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 10 }, progress, cts.Token));
        Assert.Equal(2, steps);
    }

    [Theory]
    [InlineData(60, 64, "Width")]
    [InlineData(64, 0, "Height")]
    public void ImpossibleSizesAreRejectedByName(int width, int height, string field)
    {
        using var pipe = tiny.Load();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Width = width, Height = height }));
        Assert.Equal(field, e.ParamName);
    }

    [Fact]
    public void OutOfRangeOptionsAreRejected()
    {
        using var pipe = tiny.Load();
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", GuidanceScale = -1 }));
        var init = RgbImage.Filled(64, 64, new Rgb(0, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.ImageToImage(new ImageToImageRequest { Prompt = "x", InitImage = init, Strength = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.ImageToImage(new ImageToImageRequest { Prompt = "x", InitImage = init, Strength = 1.5 }));
    }

    [Fact]
    public void AnImageToImageRequestMadeFromAGenerationRequestKeepsEverySetting()
    {
        var request = new GenerationRequest
        {
            Prompt = "a", NegativePrompt = "b", Steps = 7, GuidanceScale = 3, GuidanceRescale = 0.5, Sampler = "euler", Seed = 9, Width = 16,
            Height = 24, NumImages = 2, ClipSkip = 2, Eta = 0.3, LongPrompts = false, PromptWeighting = false, PreviewEvery = 3,
        };
        var init = RgbImage.Filled(8, 8, new Rgb(1, 2, 3));

        var img2img = new ImageToImageRequest(request, init) { Strength = 0.4 };

        foreach (var property in typeof(GenerationRequest).GetProperties().Where(p => p.DeclaringType == typeof(GenerationRequest)))
            Assert.True(Equals(property.GetValue(request), property.GetValue(img2img)), $"{property.Name} was not carried over");
        Assert.Same(init, img2img.InitImage);
        Assert.Equal(0.4, img2img.Strength);
    }

    [Fact]
    public void APngFromAModelWhoseSchedulerIsDpmpp2mWithKarrasSigmasNamesItSo()
    {
        using var pipe = tiny.Load();
        pipe.SchedulerConfig = SchedulerConfig.Parse("""
            { "_class_name": "DPMSolverMultistepScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
              "algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": true }
            """);
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 2, Seed = 1 });

        // A1111 ≥ 1.9's form; the class name alone would say plain "DPM++ 2M"
        Assert.Equal(("DPM++ 2M", "Karras"), (result.Parameters[0].Sampler, result.Parameters[0].ScheduleType));
        var path = Path.Combine(Directory.CreateTempSubdirectory("ld-sd-karras-").FullName, "k.png");
        result.Images[0].SavePng(path, result.Parameters[0]);
        var read = GenerationParameters.FromPng(path)!;
        Assert.Contains("Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5", read.Format());
        Assert.Equal("dpmpp_2m_karras", Samplers.FromParameters(read)?.Name);
    }

    [Theory]
    [InlineData("euler", null)]
    [InlineData("dpmpp_2m", null)]
    [InlineData("ddim", 0.5)]
    public void EtaReachesTheSchedulersThatUseItAndIsRecordedOnlyForThem(string sampler, double? recorded)
    {
        using var pipe = tiny.Load();
        var request = new GenerationRequest { Prompt = "x", Steps = 2, Seed = 1, Sampler = sampler };
        using var plain = pipe.TextToImage(request);
        using var withEta = pipe.TextToImage(request with { Eta = 0.5 });
        Assert.Equal(recorded, withEta.Parameters[0].Eta);
        // a scheduler that does not use η ignores it, as diffusers does; DDIM's result changes
        Assert.Equal(recorded is null, plain.Latents.Equal(withEta.Latents));
    }

    [Fact]
    public void AnImageToImageRequestSeenAsAGenerationRequestStillChecksItsStrength()
    {
        GenerationRequest request = new ImageToImageRequest { Prompt = "x", InitImage = RgbImage.Filled(8, 8, new Rgb(0, 0, 0)), Strength = 1.5 };
        var e = Assert.Throws<ArgumentOutOfRangeException>(request.Validate);
        Assert.Equal("Strength", e.ParamName);
        using var pipe = tiny.Load();
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.Validate(request));
    }

    [Fact]
    public void MissingComponentFolderIsNamed()
    {
        var dir = tiny.CopyTo(Directory.CreateTempSubdirectory("ld-sd-missing-").FullName);
        Directory.Delete(Path.Combine(dir, "vae"), recursive: true);
        var e = Assert.Throws<DirectoryNotFoundException>(() => StableDiffusionPipeline.FromPretrained(dir));
        Assert.Contains("'vae/'", e.Message);
    }
}

/// <summary>The live-tensor count is process-wide, so this runs alone, after the parallel tests.</summary>
[Collection(LiveTensorCount.Name)]
public sealed class StableDiffusionLeakTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Fact]
    public void GenerationKeepsTheLiveTensorCountFlat()
    {
        using var pipe = tiny.Load();
        var request = new GenerationRequest { Prompt = "a horse", Steps = 4, Sampler = "dpmpp_2m" };
        pipe.TextToImage(request).Dispose();
        var before = LiveTensorCount.Settled();
        pipe.TextToImage(request).Dispose();
        Assert.Equal(before, LiveTensorCount.Settled());
    }
}

internal sealed class SyncProgress(Action<GenerationProgress> report) : IProgress<GenerationProgress>
{
    public void Report(GenerationProgress value) => report(value);
}

[CollectionDefinition(nameof(StableDiffusionCollection), DisableParallelization = true)]
public sealed class StableDiffusionCollection;

/// <summary>The tiny golden Stable Diffusion model assembled from the component fixtures into one diffusers folder.</summary>
public sealed class TinyStableDiffusion : IDisposable
{
    public string Directory { get; }

    public TinyStableDiffusion() => Directory = CopyTo(System.IO.Directory.CreateTempSubdirectory("ld-sd-tiny-").FullName);

    public string CopyTo(string target) => TinyStableDiffusionFolder.Assemble(target);

    public StableDiffusionPipeline Load() => StableDiffusionPipeline.FromPretrained(Directory);

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}

[Collection(nameof(StableDiffusionCollection))]
public sealed class StableDiffusionSavingTests : IClassFixture<TinyStableDiffusion>
{
    private readonly TinyStableDiffusion tiny;

    public StableDiffusionSavingTests(TinyStableDiffusion tiny) => this.tiny = tiny;

    [Fact]
    public void SavedFolderReloadsAndGeneratesTheSameImage()
    {
        var target = Path.Combine(Directory.CreateTempSubdirectory("ld-sd-save-").FullName, "model");
        using var pipe = tiny.Load();
        pipe.Save(target);
        Assert.Equal(["model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae"],
            Directory.GetFileSystemEntries(target).Select(Path.GetFileName).Order());
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(target)!, ".*"));

        using var reloaded = StableDiffusionPipeline.FromPretrained(target);
        var request = new GenerationRequest { Prompt = "an astronaut", Steps = 2, Seed = 5 };
        using var a = pipe.TextToImage(request);
        using var b = reloaded.TextToImage(request);
        Assert.True(a.Latents.Equal(b.Latents));
        Assert.Equal(pipe.Tokenizer.Encode("an astronaut riding").InputIds, reloaded.Tokenizer.Encode("an astronaut riding").InputIds);

        var e = Assert.Throws<IOException>(() => pipe.Save(target));
        Assert.Contains("already exists", e.Message);
    }
}

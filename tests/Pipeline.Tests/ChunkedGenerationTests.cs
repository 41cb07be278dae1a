using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>Many images run in chunks (batch size × batch count) and equal one batch image for image.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class ChunkedGenerationTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    [Theory]
    [InlineData("euler_a")] // draws variance noise every step: per-image generators must follow their image into its chunk
    [InlineData("dpmpp_2m")] // a multistep scheduler: each chunk needs its own history
    public void ThreeImagesInBatchesOfTwoEqualThreeInOneBatch(string sampler)
    {
        using var pipe = tiny.Load();
        var request = new GenerationRequest { Prompt = "a horse", Steps = 3, Seed = 40, NumImages = 3, Sampler = sampler };
        var progress = new List<GenerationProgress>();
        using var chunked = pipe.TextToImage(request with { BatchSize = 2 }, new Recorder<GenerationProgress>(progress.Add));
        using var whole = pipe.TextToImage(request with { BatchSize = 3 });

        Assert.Equal([3L, 4, 8, 8], chunked.Latents.Shape);
        // Same noise per image, so equal up to float rounding: a batch of two blocks its GEMMs differently from a batch of
        // three (a wrong seed would differ by O(1)).
        TensorAssert.Close(whole.Latents, chunked.Latents, atol: 1e-3, rtol: 1e-3, "3 images in batches of 2 vs one batch");
        TensorAssert.Close(whole.Pixels, chunked.Pixels, atol: 1e-3, rtol: 1e-3, "pixels");
        Assert.Equal(3, chunked.Images.Count);
        Assert.Equal([40L, 41, 42], chunked.Parameters.Select(p => p.Seed));
        Assert.Equal(whole.Parameters, chunked.Parameters);
        // Progress counts the steps of both chunks: 1 … 6 of 6.
        Assert.Equal(Enumerable.Range(1, 6), progress.Select(p => p.Step));
        Assert.All(progress, p => Assert.Equal(6, p.TotalSteps));
    }

    [Fact]
    public void ByDefaultManyImagesRunInChunksOfAtMostEightOnTheCpu()
    {
        using var pipe = tiny.Load();
        var progress = new List<GenerationProgress>();
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 1, NumImages = 10, GuidanceScale = 1 },
            new Recorder<GenerationProgress>(progress.Add));
        Assert.Equal(10, result.Images.Count);
        Assert.Equal(2, progress.Count); // two chunks (8 + 2) of one step each
        Assert.Equal(49L, result.Parameters[9].Seed - result.Parameters[0].Seed + 40);
    }

    [Fact]
    public void ASingleNoiseSourceIsNotCutIntoChunksUnlessMemoryDemands()
    {
        using var pipe = tiny.Load();
        using var noise = new GeneratorNoise(3);
        var progress = new List<GenerationProgress>();
        using var result = pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 1, NumImages = 10, GuidanceScale = 1 },
            new Recorder<GenerationProgress>(progress.Add), noise: noise);
        Assert.Single(progress); // one batch: the images stay those one draw of [10, …] gives
    }

    [Fact]
    public void LatentsThatBecomeNonFiniteStopTheGenerationNamingTheStep()
    {
        using var pipe = tiny.Load();
        // A broken weight, as a corrupted or mis-converted checkpoint has: the U-Net's output overflows at the first step.
        using (Autograd.NoGrad()) pipe.Unet.StateDict()["conv_out.weight"].Fill_(3e38);
        var e = Assert.Throws<NonFiniteException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 4, Sampler = "ddim", Seed = 1 }));
        Assert.StartsWith("step 1 of 4 (timestep ", e.Message);
        Assert.EndsWith("the latents became NaN or infinite; the model's weights or the scheduler config are broken", e.Message);
        Assert.Equal(1, e.Step);
    }
}

/// <summary>Chunks keep the live-tensor count flat (run alone: the count is process-wide).</summary>
[Collection(LiveTensorCount.Name)]
public sealed class ChunkedGenerationMemoryTests
{
    [Fact]
    public void ChunksFreeEveryTemporary()
    {
        var dir = TinyStableDiffusionFolder.Assemble(Directory.CreateTempSubdirectory("ld-sd-chunks-").FullName);
        try
        {
            using var pipe = StableDiffusionPipeline.FromPretrained(dir);
            var request = new GenerationRequest { Prompt = "x", Steps = 2, Sampler = "euler_a", NumImages = 2, BatchSize = 1 };
            using (pipe.TextToImage(request)) { }
            var before = LiveTensorCount.Settled();
            using (pipe.TextToImage(request with { NumImages = 5 })) { }
            Assert.Equal(before, LiveTensorCount.Settled());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>Reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class Recorder<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

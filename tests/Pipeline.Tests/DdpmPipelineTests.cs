using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

public class DdpmPipelineTests(ITestOutputHelper output)
{
    // The tiny DDPM folder and its golden live with the U-Net fixtures (tests/fixtures/latentunet).
    private static string Fixture(string relative) => Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "latentunet", relative);

    private static Dictionary<string, Tensor> LoadGolden() => SafeTensorsFile.LoadFile(Fixture("goldens/ddpm_pipeline.safetensors"));

    /// <summary>Golden #11: diffusers' DDPMPipeline on ddpm_tiny, 10 steps, with the noise diffusers drew injected.</summary>
    [Fact]
    public void MatchesDiffusersDdpmPipeline()
    {
        var golden = LoadGolden();
        try
        {
            using var pipeline = DdpmPipeline.FromPretrained(Fixture("ddpm_tiny"));
            var noise = new QueueNoise(Enumerable.Range(0, 10).Select(i => golden[$"noise.{i:000}"]));
            var steps = new List<DdpmProgress>();
            using var image = pipeline.Generate(new DdpmOptions(BatchSize: 1, Steps: 10), noise, new SyncProgress<DdpmProgress>(steps.Add));
            Assert.Equal(0, noise.Remaining);
            Assert.Equal(golden["timesteps"].ToArray<long>(), pipeline.Scheduler.Timesteps.Select(t => (long)t).ToArray());
            Assert.Equal(Enumerable.Range(1, 10), steps.Select(s => s.Step));
            Assert.Equal(900.0, steps[0].Timestep);
            Assert.Equal([1L, 16, 16, 3], image.Shape);
            var expected = golden["output.image_np"].ToArray<float>();
            var actual = image.ToArray<float>();
            double maxAbs = 0;
            for (int i = 0; i < actual.Length; i++)
            {
                double diff = Math.Abs(actual[i] - expected[i]);
                maxAbs = Math.Max(maxAbs, diff);
                Assert.True(diff <= 1e-4 + 1e-4 * Math.Abs(expected[i]), $"image element {i}: {actual[i]} vs {expected[i]}");
            }
            output.WriteLine($"golden #11 ddpm_pipeline: max |diff| {maxAbs:E3}");
        }
        finally
        {
            foreach (var t in golden.Values) t.Dispose();
        }
    }

    [Fact]
    public void SeededGenerationIsReproducibleAndInRange()
    {
        using var pipeline = DdpmPipeline.FromPretrained(Fixture("ddpm_tiny"));
        using var seeded1 = new GeneratorNoise(7);
        using var seeded2 = new GeneratorNoise(7);
        using var a = pipeline.Generate(new DdpmOptions(BatchSize: 2, Steps: 3), seeded1);
        using var b = pipeline.Generate(new DdpmOptions(BatchSize: 2, Steps: 3), seeded2);
        Assert.Equal([2L, 16, 16, 3], a.Shape);
        Assert.True(a.Equal(b));
        Assert.True(a.Min().Item() >= 0 && a.Max().Item() <= 1);
    }

    [Fact]
    public void CancellationStopsTheLoop()
    {
        using var pipeline = DdpmPipeline.FromPretrained(Fixture("ddpm_tiny"));
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress<DdpmProgress>(p => { if (p.Step == 2) cts.Cancel(); });
        using var noise = new GeneratorNoise(1);
        Assert.Throws<OperationCanceledException>(() => pipeline.Generate(new DdpmOptions(Steps: 5), noise, progress, cts.Token));
    }

    [Fact]
    public void RejectsAFolderOfAnotherPipeline()
    {
        var dir = Directory.CreateTempSubdirectory("ld-ddpm-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "model_index.json"), """{"_class_name": "StableDiffusionPipeline"}""");
            var e = Assert.ThrowsAny<Exception>(() => DdpmPipeline.FromPretrained(dir));
            Assert.Contains("_class_name", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>Generation frees every temporary (run alone: the count is process-wide).</summary>
[Collection(LiveTensorCount.Name)]
public sealed class DdpmPipelineMemoryTests
{
    [Fact]
    public void GenerationKeepsTheLiveTensorCountFlat()
    {
        using var pipeline = DdpmPipeline.FromPretrained(Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "latentunet", "ddpm_tiny"));
        using var noise = new GeneratorNoise(1);
        using (var warm = pipeline.Generate(new DdpmOptions(Steps: 2), noise)) { }
        long before = Tensor.LiveCount;
        for (int i = 0; i < 2; i++)
            using (var image = pipeline.Generate(new DdpmOptions(BatchSize: 2, Steps: 4), noise)) { }
        Assert.Equal(before, Tensor.LiveCount);
    }
}

/// <summary>The pixel DDPM pipeline's chunks, its memory refusal and its non-finite check.</summary>
public sealed class DdpmPipelineChunkTests
{
    private static DdpmPipeline Load() => DdpmPipeline.FromPretrained(Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "latentunet", "ddpm_tiny"));

    [Fact]
    public void SeededImagesInChunksEqualOneBatchAndProgressCoversEveryChunk()
    {
        using var pipeline = Load();
        var progress = new List<DdpmProgress>();
        using var chunked = pipeline.Generate(new DdpmOptions(BatchSize: 3, Steps: 3, ChunkSize: 2), seed: 9, new Recorder<DdpmProgress>(progress.Add));
        using var whole = pipeline.Generate(new DdpmOptions(BatchSize: 3, Steps: 3, ChunkSize: 3), seed: 9);
        using var third = pipeline.Generate(new DdpmOptions(BatchSize: 1, Steps: 3), seed: 11);
        Assert.Equal([3L, 16, 16, 3], chunked.Shape);
        TensorAssert.Close(whole, chunked, atol: 1e-4, rtol: 1e-4, "3 images in chunks of 2 vs one batch");
        using var last = chunked.Narrow(0, 2, 1);
        TensorAssert.Close(third, last, atol: 1e-4, rtol: 1e-4, "image 2 is seed + 2");
        Assert.Equal(Enumerable.Range(1, 6), progress.Select(p => p.Step));
        Assert.All(progress, p => Assert.Equal(6, p.TotalSteps));
    }

    [Fact]
    public void AHugeRequestIsRefusedBeforeAllocating()
    {
        using var pipeline = Load();
        var e = Assert.Throws<Memory.MemoryLimitException>(() => pipeline.Generate(new DdpmOptions(BatchSize: 100000, Steps: 1, Height: 65536, Width: 65536), seed: 0));
        Assert.StartsWith("65536×65536, 100000 images", e.Message);
        pipeline.MemoryLimit = 1_000_000;
        Assert.Throws<Memory.MemoryLimitException>(() => pipeline.Generate(new DdpmOptions(BatchSize: 1000, Steps: 1, ChunkSize: 1000), seed: 0));
    }

    [Fact]
    public void ImagesThatBecomeNonFiniteStopTheGenerationNamingTheStep()
    {
        using var pipeline = Load();
        using var scope = DisposeScope.Enter();
        var nan = Tensors.Full([1, 3, 16, 16], double.NaN, DType.Float32, Device.CPU);
        var noise = new QueueNoise(Enumerable.Range(0, 10).Select(_ => nan));
        var e = Assert.Throws<NonFiniteException>(() => pipeline.Generate(new DdpmOptions(Steps: 5), noise));
        Assert.StartsWith("step 1 of 5 (timestep ", e.Message);
        Assert.Contains("the images became NaN or infinite", e.Message);
    }
}

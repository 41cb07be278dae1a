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

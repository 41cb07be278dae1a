using System.Text.Json.Nodes;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Recipes;
using LatentDiffusion.Training.Toy;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>The shared loop, driven by the small 2-D toy task (milliseconds per step).</summary>
public class TrainerTests
{
    private static readonly ToyRecipe Small = new()
    {
        Points = 300,
        HiddenUnits = 32,
        SamplePoints = 50,
        Training = ToyRecipe.DefaultTraining with
        {
            MaxSteps = 40,
            BatchSize = 16,
            LrSchedule = "cosine",
            WarmupSteps = 5,
            Ema = new EmaOptions { Decay = 0.99 },
            CheckpointEvery = 10,
            KeepCheckpoints = 2,
            SampleEvery = 0,
            LogEvery = 5,
            Seed = 7,
        },
    };

    private sealed class StopAt(long step, Action action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.Step == step && value.Event is null) action();
        }
    }

    private sealed class ThrowAt(long step) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.Step == step && value.Event is null) throw new SimulatedKill();
        }
    }

    private sealed class SimulatedKill : Exception;

    private static (Dictionary<string, byte[]> Weights, byte[] Export) Train(ToyRecipe recipe, string dir, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken token = default, Action<TrainingResult>? check = null)
    {
        using var data = SCurve.Sample(recipe.Points, recipe.Noise, recipe.Scale, recipe.DataSeed);
        using var task = new ToyTask(recipe);
        var result = new Trainer(recipe.Training, dir).Run(task, new PointDataset(data), resume, progress, token);
        check?.Invoke(result);
        var weights = task.Diffusion.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.ToBytes());
        var export = result.ModelDirectory is null ? [] : File.ReadAllBytes(Path.Combine(result.ModelDirectory, "model.safetensors"));
        return (weights, export);
    }

    private static void AssertSameWeights(Dictionary<string, byte[]> expected, Dictionary<string, byte[]> actual)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, bytes) in expected) Assert.True(bytes.AsSpan().SequenceEqual(actual[name]), $"{name} differs after resuming");
    }

    [Fact]
    public void ResumingAfterAKillGivesBitIdenticalWeights()
    {
        var whole = TestDirectory.Create();
        var killed = TestDirectory.Create();
        try
        {
            var reference = Train(Small, whole);
            // Killed at step 25: the checkpoint of step 20 survives, steps 21–25 are lost and redone.
            Assert.Throws<SimulatedKill>(() => Train(Small, killed, progress: new ThrowAt(25)));
            Assert.Equal(20, new CheckpointStore(Path.Combine(killed, "checkpoints")).Latest()!.Value.Step);
            var resumed = Train(Small, killed, resume: true, check: r => Assert.Equal(20, r.ResumedFrom));
            AssertSameWeights(reference.Weights, resumed.Weights);
            Assert.Equal(reference.Export, resumed.Export); // the EMA export too

            // The metrics hold every logged step once, in order, despite the redone steps.
            var steps = File.ReadLines(Path.Combine(killed, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["step"]!.GetValue<double>()).ToList();
            Assert.Equal([5.0, 10, 15, 20, 25, 30, 35, 40], steps);
        }
        finally
        {
            TestDirectory.Delete(whole);
            TestDirectory.Delete(killed);
        }
    }

    [Fact]
    public void CancellationWritesACheckpointAndResumesExactly()
    {
        var whole = TestDirectory.Create();
        var stopped = TestDirectory.Create();
        try
        {
            var reference = Train(Small, whole);
            using var cts = new CancellationTokenSource();
            Train(Small, stopped, progress: new StopAt(13, cts.Cancel), token: cts.Token, check: r =>
            {
                Assert.True(r.Cancelled);
                Assert.Equal(13, r.Step);
                Assert.Null(r.ModelDirectory);
            });
            var store = new CheckpointStore(Path.Combine(stopped, "checkpoints"));
            Assert.Equal([10L, 13], store.List().Select(c => c.Step));
            Assert.False(Directory.Exists(Path.Combine(stopped, "model")));
            var resumed = Train(Small, stopped, resume: true, check: r => Assert.False(r.Cancelled));
            AssertSameWeights(reference.Weights, resumed.Weights);
            Assert.Equal(reference.Export, resumed.Export);
            // Only the newest two checkpoints are kept, and no temporary folder is left behind.
            Assert.Equal([30L, 40], store.List().Select(c => c.Step));
            Assert.Empty(Directory.GetDirectories(store.Directory, ".*"));
        }
        finally
        {
            TestDirectory.Delete(whole);
            TestDirectory.Delete(stopped);
        }
    }

    [Fact]
    public void CheckpointHoldsModelEmaOptimizerAndGeneratorState()
    {
        var dir = TestDirectory.Create();
        try
        {
            Train(Small with { Training = Small.Training with { MaxSteps = 10 } }, dir);
            var checkpoint = Path.Combine(dir, "checkpoints", "step-000010");
            var state = CheckpointStore.ReadState(checkpoint);
            Assert.Equal(10, state.Step);
            Assert.True(state.HasEma);
            using var file = Torch.SafeTensors.SafeTensorsFile.Open(Path.Combine(checkpoint, CheckpointStore.TensorsFile));
            Assert.Contains("model.linears.0.weight", file.Keys);
            Assert.Contains("ema.shadow_params.0", file.Keys);
            Assert.Contains("ema.optimization_step", file.Keys);
            Assert.Contains("optimizer.state.0.exp_avg_sq", file.Keys);
            Assert.Contains("rng.training", file.Keys);
            var metrics = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"));
            var first = JsonNode.Parse(metrics[0])!.AsObject();
            Assert.Equal(["step", "epoch", "loss", "lr", "grad_norm", "it_per_s", "elapsed_s"], first.Select(p => p.Key));
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void AnOutputFolderWithARunIsNotOverwritten()
    {
        var dir = TestDirectory.Create();
        try
        {
            var recipe = Small with { Training = Small.Training with { MaxSteps = 10 } };
            Train(recipe, dir);
            var e = Assert.Throws<InvalidOperationException>(() => Train(recipe, dir));
            Assert.Contains("resume", e.Message);
            // Resuming with a different batch size would silently change the data order: refused, naming the field.
            var changed = recipe with { Training = recipe.Training with { BatchSize = 8, MaxSteps = 20 } };
            var mismatch = Assert.Throws<RecipeException>(() => Train(changed, dir, resume: true));
            Assert.Contains("batch_size", mismatch.Message);
            // Resuming a finished run with a larger max_steps continues it.
            Train(recipe with { Training = recipe.Training with { MaxSteps = 15 } }, dir, resume: true, check: r =>
            {
                Assert.Equal(10, r.ResumedFrom);
                Assert.Equal(15, r.Step);
            });
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void ResumingAFolderWithoutACheckpointIsRefusedRatherThanStartingOver()
    {
        var dir = TestDirectory.Create();
        try
        {
            var e = Assert.Throws<InvalidOperationException>(() => Train(Small, dir, resume: true));
            Assert.Equal($"{dir} has no checkpoint to resume from (start a new run instead)", e.Message);
            Assert.False(File.Exists(Path.Combine(dir, "metrics.jsonl")));
            Assert.Empty(new CheckpointStore(Path.Combine(dir, "checkpoints")).List());
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void ACudaRecipeOnAMachineWithoutCudaIsRefusedBeforeTraining()
    {
        if (TorchRuntime.CudaIsAvailable) return; // covered by the CUDA machines' own runs
        var dir = TestDirectory.Create();
        try
        {
            var e = Assert.Throws<RecipeException>(() => Train(Small with { Training = Small.Training with { Device = "cuda" } }, dir));
            Assert.Contains("'training.device' is cuda:0", e.Message);
            Assert.False(Directory.Exists(Path.Combine(dir, "checkpoints")));
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void ARecipeWhoseBatchCannotFitIsRefusedBeforeTheFirstBatch()
    {
        var dir = TestDirectory.Create();
        try
        {
            // 10⁹ points of [2] per batch: the loader would build 8 GB batches and the MLP's activations many times that.
            var e = Assert.Throws<Pipeline.Memory.MemoryLimitException>(() => Train(Small with { Training = Small.Training with { BatchSize = 1_000_000_000 } }, dir));
            Assert.StartsWith("'training.batch_size' 1000000000 of [2] samples with ", e.Message);
            Assert.Contains(" available (lower 'training.batch_size')", e.Message);
            Assert.False(Directory.Exists(Path.Combine(dir, "checkpoints")));
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void ProgressReportsSpeedAndRemainingTime()
    {
        var dir = TestDirectory.Create();
        try
        {
            var reports = new List<TrainingProgress>();
            Train(Small with { Training = Small.Training with { MaxSteps = 12, CheckpointEvery = 6 } }, dir, progress: SyncProgress.Of<TrainingProgress>(reports.Add));
            var steps = reports.Where(r => r.Event is null).ToList();
            Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), steps.Select(r => r.Step));
            Assert.All(steps, r => Assert.Equal(12, r.MaxSteps));
            Assert.True(steps[^2].StepsPerSecond > 0);
            Assert.NotNull(steps[^2].Remaining);
            Assert.Contains(reports, r => r.Event == "checkpoint step-000006");
            Assert.Contains(reports, r => r.Event?.StartsWith("model saved", StringComparison.Ordinal) == true);
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }
}

/// <summary>An IProgress that reports on the calling thread (System.Progress posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

internal static class SyncProgress
{
    public static SyncProgress<T> Of<T>(Action<T> report) => new(report);
}

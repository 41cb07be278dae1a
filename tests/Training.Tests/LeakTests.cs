using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Toy;
using Xunit;

namespace LatentDiffusion.Training.Tests;

[Collection(LiveTensorCount.Name)]
public class LeakTests
{
    private static long Settled()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Tensor.LiveCount;
    }

    [Fact]
    public void TheTrainingLoopKeepsTheLiveTensorCountFlat()
    {
        var dir = TestDirectory.Create();
        try
        {
            var recipe = new ToyRecipe
            {
                Points = 500,
                HiddenUnits = 16,
                SamplePoints = 20,
                Training = ToyRecipe.DefaultTraining with
                {
                    MaxSteps = 400, BatchSize = 32, Ema = new Recipes.EmaOptions(), CheckpointEvery = 100, SampleEvery = 50,
                    LogEvery = 10, PrefetchBatches = 2,
                },
            };
            using var data = SCurve.Sample(recipe.Points, seed: 1);
            var before = Settled();
            var counts = new Dictionary<long, long>();
            using (var task = new ToyTask(recipe))
            {
                // Sampled just after a step, when the only tensors beyond the model's, the optimiser's
                // and the EMA's are the batches the loader has queued (at most prefetch + 1).
                var progress = SyncProgress.Of<TrainingProgress>(p => { if (p.Event is null) counts[p.Step] = Tensor.LiveCount; });
                new Trainer(recipe.Training, dir).Run(task, new PointDataset(data), progress: progress);
            }
            var slack = 2 * (recipe.Training.PrefetchBatches + 1);
            // Windows after the first checkpoint, which creates the optimiser's and EMA's step-count
            // tensors once, and both spanning sampling (every 50 steps) and a checkpoint.
            var early = counts.Where(c => c.Key is > 100 and <= 200).Max(c => c.Value);
            var late = counts.Where(c => c.Key > 300).Max(c => c.Value);
            Assert.True(late <= early + slack, $"live tensors grew from {early} (steps 101–200) to {late} (steps 301–400)");
            Assert.True(Settled() <= before + slack, $"{Settled() - before} tensors outlived the run");
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void SamplingLoopsFreeEveryStepsTensors()
    {
        var recipe = Ddpm.DdpmRecipe.Parse("""
            { "model": { "type": "convnext", "config": { "dim": 4, "dim_mults": [1, 2], "channels": 1, "sample_size": 32 } },
              "sampling": { "inference_steps": 40 } }
            """);
        using var task = Ddpm.DdpmTraining.CreateTask(recipe);
        using var toy = new ToyTask(new ToyRecipe { HiddenUnits = 8 });
        using var g = new Generator(0);
        // First use: lazily created state, and each Linear's packed weight (inference packs it at the first forward).
        task.Sample(2, g).Dispose();
        ToyDiffusion.Sample(toy.Diffusion, toy.Schedule, 10, g).Dispose();
        var before = Settled();
        task.Sample(2, g).Dispose();
        ToyDiffusion.Sample(toy.Diffusion, toy.Schedule, 10, g).Dispose();
        _ = ToyDiffusion.ReverseFrames(toy.Diffusion, toy.Schedule, 10, g);
        Assert.Equal(before, Settled());
    }

    [Fact]
    public void TheBatchLoaderFreesWhatItQueued()
    {
        using var points = Tensor.From(new float[200], 100, 2);
        var dataset = new PointDataset(points);
        var before = Settled();
        using (var loader = new BatchLoader(dataset, new SampleOrder(100, 10, 0), 0, prefetch: 3))
        {
            for (int i = 0; i < 25; i++) loader.Next().Dispose();
            Thread.Sleep(50); // let it fill the queue
        }
        Assert.Equal(before, Settled());
    }
}

using System.Text.Json.Nodes;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Torch.SafeTensors;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Ddpm;
using LatentDiffusion.Training.Ldm;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

/// <summary>
/// Data-parallel training equals one process: 2 ranks (threads of this process, Gloo over 127.0.0.1) with
/// the global batch 2b split b + b give the parameters one process gets with batch 2b, for the pixel DDPM
/// and text-to-image tasks; only rank 0 writes files. Float sums are taken in another order (each rank's
/// mean, then the average), so the match is to a stated tolerance, not bit for bit.
/// </summary>
public class DataParallelTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // Measured on 2 cores: DDPM 4 steps max |Δ| 4.9e-7 (EMA 4.9e-7); text-to-image 3 steps 1.3e-6 (EMA 1.3e-6).
    private const double Atol = 1e-5;

    [Fact]
    public void ShardsOfABatchAreDisjointAndTogetherTheBatchRowForRow()
    {
        var order = new SampleOrder(24, 8, seed: 3);
        for (long k = 0; k < 6; k++)
        {
            var (first, s0) = order.Shard(k, 0, 2);
            var (second, s1) = order.Shard(k, 1, 2);
            Assert.Equal(order.Batch(k), first.Concat(second));
            Assert.Equal(new BatchShard(0, 8), s0);
            Assert.Equal(new BatchShard(4, 8), s1);
        }
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => order.Shard(0, 0, 3));
        Assert.Contains("the batch size 8 must be a multiple of the world size", e.Message);

        // A shard's random flips are the whole batch's rows: one draw per row from the batch's seed.
        var data = DdpmTrainingTests.Tiny(1).Data.Open(null);
        var indices = order.Batch(2);
        using var whole = data.GetBatch(indices, order.AugmentationSeed(2));
        using var tail = data.GetBatch(indices.AsSpan(4), order.AugmentationSeed(2), firstRow: 4);
        using var rows = whole.Data.Narrow(0, 4, 4);
        Assert.True(rows.Equal(tail.Data));
    }

    [Fact]
    public void DdpmOnTwoRanksEqualsOneProcessWithTheWholeBatch()
    {
        var recipe = DdpmTrainingTests.Tiny(4);
        Compare("DDPM", recipe.Training.BatchSize,
            dir => DdpmTraining.Run(recipe, dir),
            (dir, group) => DdpmTraining.Run(recipe, dir, group: group));
    }

    [Fact]
    public void TextToImageOnTwoRanksEqualsOneProcessWithTheWholeBatch()
    {
        var vae = LdmTrainingTests.TinyVae();
        try
        {
            // adam_epsilon 1e-5 instead of 1e-8: with 1e-8, AdamW's g/(√v + ε) turns the rounding noise of gradients that are
            // zero in exact arithmetic (the key projection's bias, which softmax ignores) and of near-zero ones into steps of
            // up to lr: measured max |Δ| 1.3e-4 after 3 steps (lr 3e-3), against 1.3e-6 with ε = 1e-5.
            var tiny = LdmTrainingTests.Tiny(Path.Combine(vae, "vae"), 3);
            var recipe = tiny with { Training = tiny.Training with { AdamEpsilon = 1e-5 } };
            Compare("LDM", recipe.Training.BatchSize,
                dir => LdmTraining.Run(recipe, dir),
                (dir, group) => LdmTraining.Run(recipe, dir, group: group));
        }
        finally
        {
            TestDirectory.Delete(vae);
        }
    }

    [Fact]
    public void ACancelledRankStopsEveryRankAfterTheSameStepAndTheRunResumesOnAsManyRanks()
    {
        var recipe = DdpmTrainingTests.Tiny(8);
        var single = TestDirectory.Create();
        var shared = TestDirectory.Create(); // one machine: the ranks share the run folder, and every rank reads the checkpoint on resume
        try
        {
            var one = DdpmTraining.Run(recipe, single);
            var stopped = new TrainingResult?[2];
            var finished = new TrainingResult?[2];
            var ranks = new TwoRanks();
            var failures = Loopback.OnThreads(2, Timeout, rank =>
            {
                using var cts = new CancellationTokenSource();
                // Only rank 1 is cancelled, after step 3: the next step's exchange tells rank 0, and both stop after step 4,
                // rank 0 writing the checkpoint.
                var progress = SyncProgress.Of<TrainingProgress>(p => { if (rank == 1 && p.Step == 3) cts.Cancel(); });
                stopped[rank] = ranks.Run(rank, group => DdpmTraining.Run(recipe, shared, progress: progress, cancellationToken: cts.Token, group: group));
                finished[rank] = ranks.Run(rank, group => DdpmTraining.Run(recipe, shared, resume: true, group: group));
            });
            foreach (var f in failures) Assert.True(f is null, f?.ToString());
            Assert.All(stopped, r => Assert.True(r!.Cancelled));
            Assert.All(stopped, r => Assert.Equal(4, r!.Step));
            Assert.All(finished, r => Assert.Equal(4, r!.ResumedFrom));
            var (model, ema) = MaxDifference(Checkpoint(single, 8), Checkpoint(shared, 8));
            output.WriteLine($"DDPM: 2 ranks stopped at 4 and resumed to 8 vs 1 process × 8 steps: max |Δ| parameters {model:E2}, EMA {ema:E2}");
            Assert.True(model <= Atol && ema <= Atol, $"parameters differ by {model:E2}, EMA by {ema:E2}");
        }
        finally
        {
            TestDirectory.Delete(single);
            TestDirectory.Delete(shared);
        }
    }

    /// <summary>Two ranks on two threads: each <see cref="Run"/> is one data-parallel run over a fresh loopback port.</summary>
    private sealed class TwoRanks
    {
        private readonly Barrier barrier = new(2);
        private int port;

        public TrainingResult Run(int rank, Func<ProcessGroup, TrainingResult> train)
        {
            if (rank == 0) port = Loopback.FreePort();
            barrier.SignalAndWait(); // rank 1 reads the port rank 0 chose
            using var store = Store.Tcp("127.0.0.1", port, 2, rank == 0, Timeout);
            using var group = ProcessGroup.Create(store, rank, 2, Timeout, hostname: "127.0.0.1");
            var result = train(group);
            group.Shutdown();
            barrier.SignalAndWait(); // rank 0's store outlives rank 1's use of it
            return result;
        }
    }

    private void Compare(string what, int batch, Func<string, TrainingResult> alone, Func<string, ProcessGroup, TrainingResult> parallel)
    {
        var single = TestDirectory.Create();
        var dirs = new[] { TestDirectory.Create(), TestDirectory.Create() };
        try
        {
            var one = alone(single);
            var ranks = new TwoRanks();
            var results = new TrainingResult?[2];
            var failures = Loopback.OnThreads(2, Timeout, rank => results[rank] = ranks.Run(rank, group => parallel(dirs[rank], group)));
            foreach (var f in failures) Assert.Null(f);
            Assert.Equal(one.Step, results[0]!.Step);

            // Only rank 0 writes: rank 1's folder stays empty.
            Assert.Empty(Directory.EnumerateFileSystemEntries(dirs[1]));
            Assert.True(Directory.Exists(Path.Combine(dirs[0], "model")));

            var (model, ema) = MaxDifference(Checkpoint(single, one.Step), Checkpoint(dirs[0], one.Step));
            output.WriteLine($"{what}: 2 ranks × {batch / 2} vs 1 process × {batch}, {one.Step} steps: max |Δ| parameters {model:E2}, EMA {ema:E2}");
            Assert.True(model <= Atol, $"{what}: parameters differ by {model:E2} > {Atol:E0}");
            Assert.True(ema <= Atol, $"{what}: EMA weights differ by {ema:E2} > {Atol:E0}");

            // The metrics are the global batch's: the loss averaged over the ranks.
            double Loss(string dir) => JsonNode.Parse(File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Last())!["loss"]!.GetValue<double>();
            Assert.Equal(Loss(single), Loss(dirs[0]), 1e-5);
            Assert.NotNull(JsonNode.Parse(File.ReadLines(Path.Combine(dirs[0], "metrics.jsonl")).Last())!["comm_s"]);
        }
        finally
        {
            TestDirectory.Delete(single);
            foreach (var d in dirs) TestDirectory.Delete(d);
        }
    }

    private static string Checkpoint(string dir, long step) => Path.Combine(dir, "checkpoints", CheckpointStore.Name(step), CheckpointStore.TensorsFile);

    private static (double Model, double Ema) MaxDifference(string a, string b)
    {
        var left = SafeTensorsFile.LoadFile(a);
        var right = SafeTensorsFile.LoadFile(b);
        try
        {
            Assert.Equal(left.Keys.Order(), right.Keys.Order());
            double model = 0, ema = 0;
            foreach (var (key, x) in left)
            {
                if (!key.StartsWith("model.", StringComparison.Ordinal) && !key.StartsWith("ema.", StringComparison.Ordinal)) continue;
                using var scope = DisposeScope.Enter();
                var d = (x.To(DType.Float64) - right[key].To(DType.Float64)).Abs().Max().Item();
                if (key.StartsWith("model.", StringComparison.Ordinal)) model = Math.Max(model, d);
                else ema = Math.Max(ema, d);
            }
            return (model, ema);
        }
        finally
        {
            foreach (var t in left.Values.Concat(right.Values)) t.Dispose();
        }
    }
}

/// <summary>Data-parallel steps (gradient buckets, the agreement vector, the broadcast) keep the live tensor count flat.</summary>
[Collection(LiveTensorCount.Name)]
public class DataParallelLeakTests
{
    [Fact]
    public void TwoRanksKeepTheLiveTensorCountFlat()
    {
        var dir = TestDirectory.Create();
        try
        {
            var recipe = new Toy.ToyRecipe
            {
                Points = 500,
                HiddenUnits = 16,
                SamplePoints = 20,
                Training = Toy.ToyRecipe.DefaultTraining with
                {
                    MaxSteps = 300, BatchSize = 32, Ema = new Recipes.EmaOptions(), CheckpointEvery = 100, SampleEvery = 0,
                    LogEvery = 10, PrefetchBatches = 2,
                },
            };
            using var data = Toy.SCurve.Sample(recipe.Points, seed: 1);
            var before = LiveTensorCount.Settled();
            var counts = new System.Collections.Concurrent.ConcurrentDictionary<long, long>();
            var port = Loopback.FreePort();
            var timeout = TimeSpan.FromSeconds(60);
            var failures = Loopback.OnThreads(2, timeout, rank =>
            {
                using var store = Store.Tcp("127.0.0.1", port, 2, rank == 0, timeout);
                using var group = ProcessGroup.Create(store, rank, 2, timeout, hostname: "127.0.0.1");
                using var task = new Toy.ToyTask(recipe);
                // Both ranks' tensors count (one process): read after rank 0's steps.
                var progress = SyncProgress.Of<TrainingProgress>(p => { if (rank == 0 && p.Event is null) counts[p.Step] = Tensor.LiveCount; });
                new Trainer(recipe.Training, Path.Combine(dir, $"rank{rank}")) { Group = group }.Run(task, new Toy.PointDataset(data), progress: progress);
                group.Shutdown();
            });
            foreach (var f in failures) Assert.True(f is null, f?.ToString());
            var slack = 4 * (recipe.Training.PrefetchBatches + 1) + 8; // two loaders' queues, and the other rank mid-step
            var early = counts.Where(c => c.Key is > 100 and <= 200).Max(c => c.Value);
            var late = counts.Where(c => c.Key > 200).Max(c => c.Value);
            Assert.True(late <= early + slack, $"live tensors grew from {early} (steps 101–200) to {late} (steps 201–300)");
            Assert.True(LiveTensorCount.Settled() <= before + slack, $"{LiveTensorCount.Settled() - before} tensors outlived the run");
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }
}

using System.Diagnostics;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;
using LatentDiffusion.Torch.SafeTensors;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training;

/// <summary>
/// The one training loop of the project. For every step: take the next batch from the loader
/// thread, ask the task for the loss, backpropagate, clip the gradient norm, step AdamW and the
/// learning-rate schedule, update the EMA; then log metrics, report progress, and every N steps
/// write a checkpoint or a sample grid. A run can be stopped at any moment (kill, or the
/// cancellation token, which writes a checkpoint first) and resumed from its output folder with
/// nothing lost but the steps after the last checkpoint: the resumed run then computes exactly
/// what an uninterrupted one would, bit for bit.
/// </summary>
/// <remarks>
/// Output folder: metrics.jsonl, checkpoints/step-NNNNNN/, samples/ (the task's files), model/ (the
/// task's export, written when the run completes).
/// </remarks>
public sealed class Trainer(TrainingOptions options, string outputDirectory)
{
    public TrainingOptions Options { get; } = options.Validate("recipe");
    public string OutputDirectory { get; } = Path.GetFullPath(outputDirectory);

    public string CheckpointDirectory => Path.Combine(OutputDirectory, "checkpoints");
    public string SampleDirectory => Path.Combine(OutputDirectory, "samples");
    public string ModelDirectory => Path.Combine(OutputDirectory, "model");
    public string MetricsPath => Path.Combine(OutputDirectory, "metrics.jsonl");

    /// <summary>
    /// Trains <paramref name="task"/> on <paramref name="dataset"/> up to <see cref="TrainingOptions.MaxSteps"/>.
    /// With <paramref name="resume"/>, continues from the newest checkpoint in the output folder (or
    /// starts afresh when there is none); without it, an output folder that already holds checkpoints
    /// is refused rather than overwritten. Cancellation writes a checkpoint of the current step and
    /// returns a result with <see cref="TrainingResult.Cancelled"/> set.
    /// </summary>
    public TrainingResult Run(ITrainingTask task, IDataset dataset, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(dataset);
        Directory.CreateDirectory(OutputDirectory);
        var store = new CheckpointStore(CheckpointDirectory);
        var latest = store.Latest();
        if (!resume && latest is { } existing)
            throw new InvalidOperationException(
                $"{OutputDirectory} already holds a training run (checkpoint of step {existing.Step}): resume it, or choose an empty output folder");

        var device = Device.Parse(Options.Device);
        if (device.Type == DeviceType.Cuda && (!Torch.Torch.CudaIsAvailable || device.Index >= Torch.Torch.CudaDeviceCount))
            throw new RecipeException($"'training.device' is {device} but libtorch sees {Torch.Torch.CudaDeviceCount} CUDA device(s)");
        // Moved before the optimiser and EMA exist: their state is created beside the parameters.
        var model = task.Model.To(device).Train();
        var parameters = model.Parameters().Where(p => p.RequiresGrad).ToList();
        using var optimizer = new AdamW(parameters, Options.LearningRate, (Options.AdamBeta1, Options.AdamBeta2), Options.AdamEpsilon, Options.WeightDecay);
        using var ema = Options.Ema is { } e
            ? new ExponentialMovingAverage(parameters, e.Decay, e.MinDecay, e.UpdateAfterStep, e.UseWarmup, e.InvGamma, e.Power)
            : null;
        using var random = new Generator(SplitMix64.Mix(Options.Seed, 0x7EA1));

        long step = 0;
        long? resumedFrom = null;
        double elapsedBefore = 0;
        if (resume && latest is { } checkpoint)
        {
            var state = Restore(checkpoint.Path, model, optimizer, ema, random, dataset);
            step = state.Step;
            resumedFrom = step;
            elapsedBefore = state.ElapsedSeconds;
        }

        var scheduler = new LRScheduler(optimizer, Options.Schedule(), step);
        var order = new SampleOrder(dataset.Count, Options.BatchSize, Options.Seed, Options.Shuffle);
        var run = new RunState(this, task, model, optimizer, ema, random, order, store, progress, elapsedBefore, device) { Step = step, LastCheckpoint = step };
        using var metrics = new MetricsLog(MetricsPath, resumedFrom is null ? null : step);
        run.Metrics = metrics;

        if (step < Options.MaxSteps)
        {
            using var loader = new BatchLoader(dataset, order, firstBatch: step, Options.PrefetchBatches);
            while (run.Step < Options.MaxSteps)
            {
                if (cancellationToken.IsCancellationRequested) return run.Stop(resumedFrom);
                Batch batch;
                try
                {
                    batch = loader.Next(cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return run.Stop(resumedFrom);
                }
                using (batch) run.TrainStep(batch, scheduler);
                run.AfterStep();
            }
        }
        return run.Finish(resumedFrom);
    }

    private CheckpointState Restore(string checkpoint, Module model, Optimizer optimizer, ExponentialMovingAverage? ema, Generator random, IDataset dataset)
    {
        var state = CheckpointStore.ReadState(checkpoint);
        void Mismatch(string what, object then, object now) => throw new RecipeException(
            $"cannot resume from {checkpoint}: it was made with {what} {then}, the recipe now gives {now}; restore the recipe or start a new output folder");
        if (state.BatchSize != Options.BatchSize) Mismatch("batch_size", state.BatchSize, Options.BatchSize);
        if (state.Seed != Options.Seed) Mismatch("seed", state.Seed, Options.Seed);
        if (state.DatasetCount != dataset.Count) Mismatch("a dataset of", state.DatasetCount + " items", dataset.Count + " items");
        if (state.HasEma != (ema is not null)) Mismatch("EMA", state.HasEma ? "on" : "off", ema is not null ? "on" : "off");

        var all = SafeTensorsFile.LoadFile(Path.Combine(checkpoint, CheckpointStore.TensorsFile));
        try
        {
            Dictionary<string, Tensor> Part(string prefix) => all
                .Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
            model.LoadStateDict(Part("model."));
            optimizer.LoadStateDict(Part("optimizer."));
            ema?.LoadStateDict(Part("ema."));
            if (!all.TryGetValue("rng.training", out var rng)) throw new InvalidDataException($"{checkpoint}: the generator state (rng.training) is missing");
            random.SetState(rng);
        }
        finally
        {
            foreach (var t in all.Values) t.Dispose();
        }
        return state;
    }

    /// <summary>The mutable state of one invocation of <see cref="Run"/>.</summary>
    private sealed class RunState(Trainer trainer, ITrainingTask task, Module model, Optimizer optimizer, ExponentialMovingAverage? ema,
        Generator random, SampleOrder order, CheckpointStore store, IProgress<TrainingProgress>? progress, double elapsedBefore, Device device)
    {
        private readonly TrainingOptions options = trainer.Options;
        private readonly List<Tensor> parameters = optimizer.Parameters.ToList();
        private readonly Stopwatch wall = Stopwatch.StartNew();
        private readonly Stopwatch training = new();
        private double windowLoss;
        private int windowCount;
        private double lastWindowLoss = double.NaN;
        private double recentStepSeconds = double.NaN;
        private long stepsThisRun;

        public long Step { get; set; }
        public long LastCheckpoint { get; set; }
        public long LastSamples { get; set; } = -1;
        public MetricsLog? Metrics { get; set; }
        private double Loss { get; set; } = double.NaN;
        private double LearningRate { get; set; }
        private double GradNorm { get; set; }

        public void TrainStep(Batch batch, LRScheduler scheduler)
        {
            var started = training.Elapsed;
            training.Start();
            using (var scope = DisposeScope.Enter())
            {
                optimizer.ZeroGrad();
                using var moved = device.Type == DeviceType.Cpu ? null : batch.To(device);
                var loss = task.ComputeLoss(moved ?? batch, random);
                loss.Backward();
                GradNorm = GradientClipping.ClipGradNorm(parameters, options.MaxGradNorm ?? double.PositiveInfinity);
                LearningRate = optimizer.LearningRate;
                optimizer.Step();
                scheduler.Step();
                ema?.Update();
                Loss = loss.Item();
            }
            optimizer.ZeroGrad(); // frees the gradients between steps instead of holding them through sampling
            training.Stop();
            Step++;
            stepsThisRun++;
            var seconds = (training.Elapsed - started).TotalSeconds;
            // The first step pays for allocations and lazy initialisation: leave it out of the speed.
            recentStepSeconds = stepsThisRun <= 1 ? double.NaN
                : double.IsNaN(recentStepSeconds) ? seconds : 0.9 * recentStepSeconds + 0.1 * seconds;
            if (!double.IsFinite(Loss))
                throw new TrainingDivergedException(
                    $"the loss became {Loss} at step {Step}; lower training.learning_rate or set training.max_grad_norm " +
                    $"(the last checkpoint, step {LastCheckpoint}, is intact)");
        }

        public void AfterStep()
        {
            windowLoss += Loss;
            windowCount++;
            if (Step % options.LogEvery == 0 || Step == options.MaxSteps) WriteMetrics();
            Report(null);
            if (options.CheckpointEvery > 0 && Step % options.CheckpointEvery == 0) Checkpoint();
            if (options.SampleEvery > 0 && Step % options.SampleEvery == 0) Samples();
        }

        public TrainingResult Stop(long? resumedFrom)
        {
            if (windowCount > 0) WriteMetrics();
            if (LastCheckpoint != Step || store.Latest() is null) Checkpoint();
            return Result(resumedFrom, cancelled: true, modelDirectory: null);
        }

        public TrainingResult Finish(long? resumedFrom)
        {
            if (windowCount > 0) WriteMetrics();
            if (LastCheckpoint != Step || store.Latest() is null) Checkpoint();
            if (LastSamples != Step) Samples();
            WithEmaWeights(() => task.SaveModel(trainer.ModelDirectory));
            Report($"model saved to {trainer.ModelDirectory}");
            return Result(resumedFrom, cancelled: false, trainer.ModelDirectory);
        }

        private TrainingResult Result(long? resumedFrom, bool cancelled, string? modelDirectory) =>
            new(Step, resumedFrom, cancelled, lastWindowLoss, MeanSpeed, modelDirectory);

        private double MeanSpeed => stepsThisRun > 0 && training.Elapsed.TotalSeconds > 0 ? stepsThisRun / training.Elapsed.TotalSeconds : 0;

        private double Speed => double.IsNaN(recentStepSeconds) ? MeanSpeed : 1.0 / recentStepSeconds;

        private void WriteMetrics()
        {
            lastWindowLoss = windowLoss / windowCount;
            Metrics?.Write([
                new("step", Step),
                new("epoch", (double)(Step * options.BatchSize) / order.Count),
                new("loss", lastWindowLoss),
                new("lr", LearningRate),
                new("grad_norm", GradNorm),
                new("it_per_s", Speed),
                new("elapsed_s", elapsedBefore + wall.Elapsed.TotalSeconds),
            ]);
            windowLoss = 0;
            windowCount = 0;
        }

        private void Report(string? what)
        {
            if (progress is null) return;
            var speed = Speed;
            TimeSpan? remaining = speed > 0 ? TimeSpan.FromSeconds((options.MaxSteps - Step) / speed) : null;
            progress.Report(new TrainingProgress(Step, options.MaxSteps, Loss, LearningRate, speed, wall.Elapsed, remaining, what));
        }

        private void Checkpoint()
        {
            using var scope = DisposeScope.Enter();
            var state = new CheckpointState
            {
                Step = Step,
                MaxSteps = options.MaxSteps,
                BatchSize = options.BatchSize,
                Seed = options.Seed,
                DatasetCount = order.Count,
                Epoch = order.EpochOf(Step),
                LearningRate = optimizer.LearningRate,
                HasEma = ema is not null,
                ElapsedSeconds = elapsedBefore + wall.Elapsed.TotalSeconds,
                WrittenUtc = DateTime.UtcNow,
            };
            var tensors = new List<KeyValuePair<string, Tensor>>();
            tensors.AddRange(model.StateDict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value)));
            if (ema is not null) tensors.AddRange(ema.StateDict().Select(kv => new KeyValuePair<string, Tensor>("ema." + kv.Key, kv.Value)));
            tensors.AddRange(optimizer.StateDict().Select(kv => new KeyValuePair<string, Tensor>("optimizer." + kv.Key, kv.Value)));
            tensors.Add(new("rng.training", random.GetState()));
            var path = store.Write(state, tensors, options.KeepCheckpoints);
            LastCheckpoint = Step;
            Report($"checkpoint {Path.GetFileName(path)}");
        }

        private void Samples()
        {
            string? written = null;
            WithEmaWeights(() =>
            {
                using var sampleRandom = new Generator(SplitMix64.Mix(options.Seed, 0x5A3B1E));
                written = task.WriteSamples(trainer.SampleDirectory, Step, sampleRandom);
            });
            LastSamples = Step;
            if (written is not null) Report($"samples {Path.GetRelativePath(trainer.OutputDirectory, written)}");
        }

        /// <summary>Runs <paramref name="action"/> in eval mode without gradients, with the EMA weights swapped in when there are any.</summary>
        private void WithEmaWeights(Action action)
        {
            ema?.Store();
            ema?.CopyTo();
            model.Eval();
            try
            {
                using var scope = DisposeScope.Enter();
                using var noGrad = Torch.Torch.NoGrad();
                action();
            }
            finally
            {
                model.Train();
                ema?.Restore();
            }
        }
    }
}

/// <summary>The loss became NaN or infinite; training stopped (the last checkpoint is intact).</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

using System.Diagnostics;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Distributed;
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
/// task's export, written when the run completes). A task that trains a discriminator too
/// (<see cref="IAdversarialTrainingTask"/>) gets a second optimiser for it, whose steps follow the model's.
/// With a <see cref="Group"/>, the run is data-parallel (as torch's DistributedDataParallel): training.batch_size
/// is the global batch, each rank computes its shard (<see cref="Data.SampleOrder.Shard"/>), the gradients are
/// averaged before clipping (<see cref="GradientSync"/>), and only rank 0 writes metrics, checkpoints, samples
/// and the model; every rank reads the checkpoint on resume, which needs the same world size.
/// </remarks>
public sealed partial class Trainer(TrainingOptions options, string outputDirectory)
{
    public TrainingOptions Options { get; } = options.Validate("recipe");
    public string OutputDirectory { get; } = Path.GetFullPath(outputDirectory);

    public string CheckpointDirectory => Path.Combine(OutputDirectory, "checkpoints");
    public string SampleDirectory => Path.Combine(OutputDirectory, "samples");
    public string ModelDirectory => Path.Combine(OutputDirectory, "model");
    public string MetricsPath => Path.Combine(OutputDirectory, "metrics.jsonl");

    /// <summary>The ranks of a data-parallel run (null: this process alone).</summary>
    public ProcessGroup? Group { get; init; }

    /// <summary>Whether this process writes the run's files (rank 0, or the only process).</summary>
    public bool IsMain => Group is null || Group.Rank == 0;

    private int WorldSize => Group?.WorldSize ?? 1;

    /// <summary>
    /// <see cref="Run"/> for a recipe: first keeps a copy of it, <paramref name="recipeJson"/>, as recipe.json in the output
    /// folder (a resumed run keeps the copy it has; only the main rank writes it).
    /// </summary>
    public TrainingResult RunRecipe(string recipeJson, ITrainingTask task, IDataset dataset, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(OutputDirectory);
        var copy = Path.Combine(OutputDirectory, "recipe.json");
        if (IsMain && (!resume || !File.Exists(copy))) AtomicFile.WriteAllText(copy, recipeJson + "\n");
        return Run(task, dataset, resume, progress, cancellationToken);
    }

    /// <summary>
    /// Trains <paramref name="task"/> on <paramref name="dataset"/> up to <see cref="TrainingOptions.MaxSteps"/>.
    /// With <paramref name="resume"/>, continues from the newest checkpoint in the output folder (a folder
    /// without one is refused: starting over silently would cost a long run); without it, an output folder that already holds checkpoints
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
        if (resume && latest is null)
            throw new InvalidOperationException($"{OutputDirectory} has no checkpoint to resume from (start a new run instead)");

        var device = Device.Parse(Options.Device);
        if (device.Type == DeviceType.Cuda && (!TorchRuntime.CudaIsAvailable || device.Index >= TorchRuntime.CudaDeviceCount))
            throw new RecipeException($"'training.device' is {device} but libtorch sees {TorchRuntime.CudaDeviceCount} CUDA device(s)");
        // Before anything is allocated for the run: a batch that cannot fit would otherwise grow until the machine kills us.
        TrainingMemory.EnsureFits(Options, task.Model, dataset, device);
        if (WorldSize > 1 && Options.BatchSize % WorldSize != 0)
            throw new RecipeException($"'training.batch_size' {Options.BatchSize} (the global batch) is not a multiple of the {WorldSize} ranks");
        if (WorldSize > 1 && task is IAdversarialTrainingTask { Adversary: not null })
            throw new RecipeException("data-parallel training of a discriminator is not supported: train it in one process");
        // Moved before the optimiser and EMA exist: their state is created beside the parameters.
        var model = task.Model.To(device).Train();
        var sync = Group is null ? null : new GradientSync(Group);
        sync?.BroadcastFromMain(model); // before the EMA copies the parameters
        var parameters = model.Parameters().Where(p => p.RequiresGrad).ToList();
        using var optimizer = new AdamW(parameters, Options.LearningRate, (Options.AdamBeta1, Options.AdamBeta2), Options.AdamEpsilon, Options.WeightDecay);
        using var ema = Options.Ema is { } e
            ? new ExponentialMovingAverage(parameters, e.Decay, e.MinDecay, e.UpdateAfterStep, e.UseWarmup, e.InvGamma, e.Power)
            : null;
        using var adversary = AdversarialState.Of(task, device, Options.Schedule());
        using var random = new Generator(SplitMix64.Mix(Options.Seed, 0x7EA1));

        long step = 0;
        long? resumedFrom = null;
        double elapsedBefore = 0;
        if (resume && latest is { } checkpoint)
        {
            var state = Restore(checkpoint.Path, model, optimizer, ema, adversary, random, dataset);
            step = state.Step;
            resumedFrom = step;
            elapsedBefore = state.ElapsedSeconds;
        }

        var scheduler = new LRScheduler(optimizer, Options.Schedule(), step);
        var order = dataset is IBucketedDataset { Buckets: { } buckets }
            ? SampleOrder.Bucketed(buckets, Options.BatchSize, Options.Seed, Options.Shuffle)
            : new SampleOrder(dataset.Count, Options.BatchSize, Options.Seed, Options.Shuffle);
        var run = new RunState(this, task, model, optimizer, ema, adversary, random, order, store, progress, elapsedBefore, device, sync,
            (dataset as IBucketedDataset)?.Bucketing, cancellationToken)
            { Step = step, LastCheckpoint = step };
        using var metrics = IsMain ? new MetricsLog(MetricsPath, resumedFrom is null ? null : step) : null;
        run.Metrics = metrics;

        if (step < Options.MaxSteps)
        {
            using var loader = new BatchLoader(dataset, order, firstBatch: step, Options.PrefetchBatches, Group?.Rank ?? 0, WorldSize);
            // Data-parallel ranks stop together: a cancellation is shared with the step's gradients (GradientSync)
            // and honoured after that step by every rank.
            var loaderToken = sync is null ? cancellationToken : CancellationToken.None;
            while (run.Step < Options.MaxSteps)
            {
                if (sync is null && cancellationToken.IsCancellationRequested) return run.Stop(resumedFrom);
                Batch batch;
                try
                {
                    batch = loader.Next(loaderToken);
                }
                catch (OperationCanceledException)
                {
                    return run.Stop(resumedFrom);
                }
                using (batch) run.TrainStep(batch, scheduler);
                run.AfterStep();
                if (run.StopAgreed) return run.Stop(resumedFrom);
            }
        }
        return run.Finish(resumedFrom);
    }

    private CheckpointState Restore(string checkpoint, Module model, Optimizer optimizer, ExponentialMovingAverage? ema, AdversarialState? adversary,
        Generator random, IDataset dataset)
    {
        var state = CheckpointStore.ReadState(checkpoint);
        void Mismatch(string what, object then, object now) => throw new RecipeException(
            $"cannot resume from {checkpoint}: it was made with {what} {then}, the recipe now gives {now}; restore the recipe or start a new output folder");
        if (state.BatchSize != Options.BatchSize) Mismatch("batch_size", state.BatchSize, Options.BatchSize);
        if (state.Seed != Options.Seed) Mismatch("seed", state.Seed, Options.Seed);
        if (state.WorldSize != WorldSize)
            throw new RecipeException($"cannot resume from {checkpoint}: it was made by {state.WorldSize} rank(s), this run has {WorldSize}; " +
                $"resume with --nproc {state.WorldSize} (WORLD_SIZE={state.WorldSize}), or start a new output folder");
        if (state.DatasetCount != dataset.Count) Mismatch("a dataset of", state.DatasetCount + " items", dataset.Count + " items");
        if (state.HasEma != (ema is not null)) Mismatch("EMA", state.HasEma ? "on" : "off", ema is not null ? "on" : "off");
        if (state.HasDiscriminator != (adversary is not null))
            Mismatch("the discriminator", state.HasDiscriminator ? "on" : "off", adversary is not null ? "on" : "off");
        // The buckets decide which items share a batch and at what size: other buckets make other batches.
        var bucketing = (dataset as IBucketedDataset)?.Bucketing;
        if (state.EnableBucket is { } wasBucketed && wasBucketed != bucketing is not null)
            Mismatch("enable_bucket", wasBucketed ? "true" : "false", bucketing is not null ? "true" : "false");
        if (state.Bucketing is { } then && bucketing is { } now)
            foreach (var ((name, before), (_, after)) in then.Settings.Zip(now.Settings))
                if (before != after) Mismatch(name, before, after);

        var all = SafeTensorsFile.LoadFile(Path.Combine(checkpoint, CheckpointStore.TensorsFile));
        try
        {
            Dictionary<string, Tensor> Part(string prefix) => all
                .Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
            model.LoadStateDict(Part("model."));
            optimizer.LoadStateDict(Part("optimizer."));
            ema?.LoadStateDict(Part("ema."));
            adversary?.LoadStateDict(Part);
            if (!all.TryGetValue("rng.training", out var rng)) throw new InvalidDataException($"{checkpoint}: the generator state (rng.training) is missing");
            random.SetState(rng);
        }
        finally
        {
            foreach (var t in all.Values) t.Dispose();
        }
        return state;
    }
}

/// <summary>The loss became NaN or infinite; training stopped (the last checkpoint is intact).</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

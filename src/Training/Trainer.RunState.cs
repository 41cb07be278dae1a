using System.Diagnostics;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training;

// The step-by-step part of the loop: one training step, metrics, progress, checkpoints, samples, export.
public sealed partial class Trainer
{
    /// <summary>The mutable state of one invocation of <see cref="Run"/>.</summary>
    private sealed class RunState(Trainer trainer, ITrainingTask task, Module model, Optimizer optimizer, ExponentialMovingAverage? ema,
        AdversarialState? adversary, Generator random, SampleOrder order, CheckpointStore store, IProgress<TrainingProgress>? progress,
        double elapsedBefore, Device device, GradientSync? sync, BucketOptions? bucketing, CancellationToken cancellationToken)
    {
        private readonly TrainingOptions options = trainer.Options;
        private readonly List<Tensor> parameters = optimizer.Parameters.ToList();
        private readonly Stopwatch wall = Stopwatch.StartNew();
        private readonly Stopwatch training = new();
        private double windowLoss;
        private int windowCount;
        private readonly OrderedDictionary<string, (double Sum, int Count)> windowTaskMetrics = new();
        private IReadOnlyList<KeyValuePair<string, double>>? stepTaskMetrics;
        private double lastWindowLoss = double.NaN;
        private double recentStepSeconds = double.NaN;
        private long stepsThisRun;
        private TimeSpan windowCommunicationStart;

        /// <summary>In data-parallel training: some rank was cancelled, so every rank stops after this step.</summary>
        public bool StopAgreed { get; private set; }

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
                var adversarial = adversary?.ActiveAt(Step) == true;
                var loss = adversarial ? adversary!.ModelLoss(moved ?? batch, random) : task.ComputeLoss(moved ?? batch, random);
                loss.Backward();
                var stepLoss = loss.Item();
                if (sync is not null) (stepLoss, StopAgreed) = sync.AverageGradients(parameters, stepLoss, cancellationToken.IsCancellationRequested);
                GradNorm = GradientClipping.ClipGradNorm(parameters, options.MaxGradNorm ?? double.PositiveInfinity);
                LearningRate = optimizer.LearningRate;
                optimizer.Step();
                scheduler.Step();
                ema?.Update();
                if (adversarial) adversary!.TrainDiscriminator(Step, random);
                Loss = stepLoss;
                stepTaskMetrics = adversarial ? adversary!.StepMetrics : null;
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
            foreach (var (name, value) in stepTaskMetrics ?? [])
            {
                var (sum, count) = windowTaskMetrics.GetValueOrDefault(name);
                windowTaskMetrics[name] = (sum + value, count + 1);
            }
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
            if (trainer.IsMain)
            {
                WithEmaWeights(() => task.SaveModel(trainer.ModelDirectory));
                Report($"model saved to {trainer.ModelDirectory}");
            }
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
                .. windowTaskMetrics.Select(m => new KeyValuePair<string, double>(m.Key, m.Value.Sum / m.Value.Count)),
                new("it_per_s", Speed),
                new("elapsed_s", elapsedBefore + wall.Elapsed.TotalSeconds),
                .. CommunicationMetric(),
            ]);
            windowLoss = 0;
            windowCount = 0;
            windowTaskMetrics.Clear();
        }

        // Data-parallel only: seconds per step spent in collectives over the window.
        private IEnumerable<KeyValuePair<string, double>> CommunicationMetric()
        {
            if (sync is null) yield break;
            var now = sync.CommunicationTime;
            yield return new("comm_s", (now - windowCommunicationStart).TotalSeconds / windowCount);
            windowCommunicationStart = now;
        }

        private void Report(string? what)
        {
            if (progress is null) return;
            var speed = Speed;
            TimeSpan? remaining = speed > 0 ? TimeSpan.FromSeconds((options.MaxSteps - Step) / speed) : null;
            progress.Report(new TrainingProgress(Step, options.MaxSteps, Loss, LearningRate, speed, wall.Elapsed, remaining, what, stepTaskMetrics));
        }

        private void Checkpoint()
        {
            if (!trainer.IsMain)
            {
                LastCheckpoint = Step; // rank 0 writes it; the ranks are identical
                return;
            }
            using var scope = DisposeScope.Enter();
            var state = new CheckpointState
            {
                Step = Step,
                MaxSteps = options.MaxSteps,
                BatchSize = options.BatchSize,
                Seed = options.Seed,
                WorldSize = sync?.Group.WorldSize ?? 1,
                DatasetCount = order.Count,
                Epoch = order.EpochOf(Step),
                LearningRate = optimizer.LearningRate,
                HasEma = ema is not null,
                HasDiscriminator = adversary is not null,
                EnableBucket = bucketing is not null,
                Bucketing = bucketing,
                ElapsedSeconds = elapsedBefore + wall.Elapsed.TotalSeconds,
                WrittenUtc = DateTime.UtcNow,
            };
            var tensors = new List<KeyValuePair<string, Tensor>>();
            tensors.AddRange(model.StateDict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value)));
            if (ema is not null) tensors.AddRange(ema.StateDict().Select(kv => new KeyValuePair<string, Tensor>("ema." + kv.Key, kv.Value)));
            tensors.AddRange(optimizer.StateDict().Select(kv => new KeyValuePair<string, Tensor>("optimizer." + kv.Key, kv.Value)));
            if (adversary is not null) tensors.AddRange(adversary.StateDict());
            tensors.Add(new("rng.training", random.GetState()));
            var path = store.Write(state, tensors, options.KeepCheckpoints);
            LastCheckpoint = Step;
            Report($"checkpoint {Path.GetFileName(path)}");
        }

        private void Samples()
        {
            if (!trainer.IsMain)
            {
                LastSamples = Step;
                return;
            }
            string? written = null;
            WithEmaWeights(() =>
            {
                using var sampleRandom = new Generator(SplitMix64.Mix(options.Seed, 0x5A3B1E));
                try
                {
                    written = task.WriteSamples(trainer.SampleDirectory, Step, sampleRandom, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    Report("samples skipped: cancelled"); // the loop notices the token next and checkpoints
                }
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
                using var noGrad = Autograd.NoGrad();
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

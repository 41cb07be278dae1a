using System.Diagnostics;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>How a classifier or judge is trained. The defaults are those of the shipped weights.</summary>
public sealed record ClassifierTrainingOptions
{
    public FashionClassifierConfig Model { get; init; } = new();
    public int Epochs { get; init; } = 3;

    /// <summary>Stop after this many steps (tests train for a few); null trains every epoch.</summary>
    public int? MaxSteps { get; init; }

    public int BatchSize { get; init; } = 128;

    /// <summary>Peak AdamW learning rate, reached after a linear warm-up and followed by a cosine decay to zero.</summary>
    public double LearningRate { get; init; } = 3e-3;

    public double WarmupFraction { get; init; } = 0.05;
    public double WeightDecay { get; init; } = 1e-2;

    /// <summary>Weight of the colour cross-entropy added to the class one (judges only).</summary>
    public double ColourLossWeight { get; init; } = 1.0;

    /// <summary>Mirror half the training images left–right (clothes are roughly symmetric).</summary>
    public bool RandomFlip { get; init; } = true;

    /// <summary>
    /// Re-tint every training image with a random colour each time it is drawn (judges only): the
    /// judge then sees each shape in several colours, which keeps its class decision colour-blind.
    /// </summary>
    public bool RandomRecolour { get; init; }

    /// <summary>Seeds the weights, the shuffling and the flips: the same seed trains the same model.</summary>
    public int Seed { get; init; } = 1;

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "epochs must be at least 1");
        if (MaxSteps is < 1) throw new ArgumentOutOfRangeException(nameof(MaxSteps), MaxSteps, "max steps must be at least 1");
        if (BatchSize < 2) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "batch size must be at least 2 (batch norm)");
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "learning rate must be positive");
        if (!(WarmupFraction >= 0 && WarmupFraction < 1)) throw new ArgumentOutOfRangeException(nameof(WarmupFraction), WarmupFraction, "warm-up fraction must be in [0, 1)");
        Model.Validate("classifier training options");
    }
}

/// <summary>Reported after every training step.</summary>
public sealed record ClassifierTrainingProgress(int Step, int TotalSteps, int Epoch, double Loss, double LearningRate, TimeSpan Elapsed);

/// <summary>A trained model with its loss curve (one value per step) and how long training took.</summary>
public sealed record TrainedClassifier(FashionClassifier Model, IReadOnlyList<double> Losses, TimeSpan Elapsed, TimeSpan CpuTime);

/// <summary>Accuracy on a labelled set; colour accuracy only where the set and model have colours.</summary>
public sealed record ClassifierAccuracy(double ClassAccuracy, double? ColourAccuracy, int Count, IReadOnlyList<double> PerClassAccuracy);

/// <summary>Trains and tests <see cref="FashionClassifier"/>s with AdamW on cross-entropy.</summary>
public static class ClassifierTraining
{
    /// <summary>
    /// Trains a new model on <paramref name="data"/>: minibatches of shuffled items, loss = CE(class)
    /// (+ w·CE(colour) for a judge), AdamW with warm-up + cosine learning rate. Each step runs in its
    /// own dispose scope, so the number of live tensors stays flat.
    /// </summary>
    public static TrainedClassifier Train(LabelledImages data, ClassifierTrainingOptions? options = null,
        IProgress<ClassifierTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        options ??= new ClassifierTrainingOptions();
        options.Validate();
        if (data.Channels != options.Model.InChannels)
            throw new ArgumentException($"{data.Name} has {data.Channels} channels but the model expects {options.Model.InChannels}");
        if (options.Model.NumColours > 0 && !data.HasColours)
            throw new ArgumentException($"the model predicts colours but {data.Name} has no colour labels");
        if (options.RandomRecolour && data.RecolourCount == 0) throw new ArgumentException($"{data.Name} cannot be re-tinted (random_recolour)");
        if (data.Count < options.BatchSize) throw new ArgumentException($"{data.Name} has {data.Count} items, fewer than one batch of {options.BatchSize}");

        var stepsPerEpoch = data.Count / options.BatchSize; // the incomplete last batch is dropped
        var totalSteps = Math.Min(options.MaxSteps ?? int.MaxValue, stepsPerEpoch * options.Epochs);
        var random = new Random(options.Seed);
        using var generator = new Generator((ulong)options.Seed);
        var model = new FashionClassifier(options.Model, generator);
        var clock = Stopwatch.StartNew();
        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        var losses = new List<double>(totalSteps);
        try
        {
            using var optimizer = new AdamW(model.Parameters(), options.LearningRate, weightDecay: options.WeightDecay);
            var schedule = new LRScheduler(optimizer,
                LearningRateSchedule.CosineWithWarmup((long)(options.WarmupFraction * totalSteps), totalSteps));
            model.Train();
            var order = Enumerable.Range(0, data.Count).ToArray();
            var flips = new bool[options.BatchSize];
            var recolours = options.RandomRecolour ? new int[options.BatchSize] : [];
            var step = 0;
            for (int epoch = 0; step < totalSteps; epoch++)
            {
                random.Shuffle(order);
                for (int b = 0; b < stepsPerEpoch && step < totalSteps; b++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    for (int k = 0; k < flips.Length; k++) flips[k] = options.RandomFlip && random.Next(2) == 1;
                    for (int k = 0; k < recolours.Length; k++) recolours[k] = random.Next(data.RecolourCount);
                    using (var scope = DisposeScope.Enter())
                    {
                        var (images, classes, colours) = data.Batch(order.AsSpan(b * options.BatchSize, options.BatchSize), flips, recolours);
                        var output = model.Forward(images);
                        var loss = Functional.CrossEntropy(output.ClassLogits, classes);
                        if (output.ColourLogits is { } colourLogits && colours is not null)
                            loss = loss + options.ColourLossWeight * Functional.CrossEntropy(colourLogits, colours);
                        optimizer.ZeroGrad();
                        loss.Backward();
                        optimizer.Step();
                        losses.Add(loss.Item());
                    }
                    var learningRate = optimizer.LearningRate;
                    schedule.Step();
                    step++;
                    progress?.Report(new ClassifierTrainingProgress(step, totalSteps, epoch, losses[^1], learningRate, clock.Elapsed));
                }
            }
            optimizer.ZeroGrad();
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.Eval();
        return new TrainedClassifier(model, losses, clock.Elapsed, Process.GetCurrentProcess().TotalProcessorTime - cpuStart);
    }

    /// <summary>Class (and colour) accuracy of <paramref name="model"/> on <paramref name="data"/>, in evaluation mode.</summary>
    public static ClassifierAccuracy Evaluate(FashionClassifier model, LabelledImages data, int batchSize = 500, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var numClasses = model.Config.NumClasses;
        var correct = new int[numClasses];
        var total = new int[numClasses];
        int colourCorrect = 0;
        var withColours = model.Config.NumColours > 0 && data.HasColours;
        ForEachBatch(model, data, batchSize, cancellationToken, (start, output, _) =>
        {
            var predicted = output.ClassLogits.ArgMax(1).ToArray<long>();
            var predictedColours = withColours ? output.ColourLogits!.ArgMax(1).ToArray<long>() : null;
            for (int k = 0; k < predicted.Length; k++)
            {
                var truth = data.Class(start + k);
                total[truth]++;
                if (predicted[k] == truth) correct[truth]++;
                if (predictedColours is not null && predictedColours[k] == data.Colour(start + k)) colourCorrect++;
            }
        });
        var perClass = Enumerable.Range(0, numClasses).Select(c => total[c] == 0 ? double.NaN : (double)correct[c] / total[c]).ToList();
        return new ClassifierAccuracy((double)correct.Sum() / data.Count, withColours ? (double)colourCorrect / data.Count : null, data.Count, perClass);
    }

    /// <summary>Statistics of the penultimate features of <paramref name="model"/> over <paramref name="data"/> (the FID reference).</summary>
    public static FeatureStatistics FeatureStatisticsOf(FashionClassifier model, LabelledImages data, int batchSize = 500, CancellationToken cancellationToken = default)
    {
        var accumulator = new FeatureAccumulator();
        ForEachBatch(model, data, batchSize, cancellationToken, (_, output, _) => accumulator.Add(output.Features));
        return accumulator.ToStatistics();
    }

    private static void ForEachBatch(FashionClassifier model, LabelledImages data, int batchSize, CancellationToken cancellationToken,
        Action<int, ClassifierOutput, Tensor> visit)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        var wasTraining = model.IsTraining;
        model.Eval();
        try
        {
            using var noGrad = Autograd.NoGrad();
            var items = Enumerable.Range(0, data.Count).ToArray();
            for (int start = 0; start < data.Count; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = DisposeScope.Enter();
                var (images, classes, _) = data.Batch(items.AsSpan(start, Math.Min(batchSize, data.Count - start)));
                using var output = model.Forward(images);
                visit(start, output, classes);
            }
        }
        finally
        {
            model.Train(wasTraining);
        }
    }
}

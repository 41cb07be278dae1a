using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>A training step of one of the judges (see <see cref="JudgeTraining.TrainJudges"/>).</summary>
public sealed record JudgeTrainingProgress(string Judge, ClassifierTrainingProgress Step);

/// <summary>
/// Trains the two shipped judges from scratch and writes their folders (the `ldm train judges`
/// command; see configs/eval/README.md): the Fashion-MNIST classifier and the Fashion colours judge,
/// each with its measured test accuracy and the feature statistics of the test split.
/// </summary>
public static class JudgeTraining
{
    public static ClassifierTrainingOptions ClassifierOptions { get; } = new() { Epochs = 4 };

    public static ClassifierTrainingOptions ColoursJudgeOptions { get; } = new()
    {
        Epochs = 5,
        RandomRecolour = true,
        Model = new FashionClassifierConfig { InChannels = FashionColours.Channels, NumColours = FashionColours.Colours.Count },
    };

    /// <summary>Trains both judges into <paramref name="root"/>/fashion-classifier and …/fashion-colours-judge.</summary>
    public static IReadOnlyList<JudgeReport> TrainJudges(string root, IProgress<JudgeTrainingProgress>? progress = null, CancellationToken cancellationToken = default) =>
    [
        TrainFashionClassifier(Path.Combine(root, Judge.FashionClassifierName), null, Forward(Judge.FashionClassifierName, progress), cancellationToken),
        TrainFashionColoursJudge(Path.Combine(root, Judge.FashionColoursJudgeName), null, null, Forward(Judge.FashionColoursJudgeName, progress), cancellationToken),
    ];

    /// <summary>Trains the classifier on the 60,000 Fashion-MNIST training images and tests it on the 10,000 test images.</summary>
    public static JudgeReport TrainFashionClassifier(string directory, ClassifierTrainingOptions? options = null,
        IProgress<ClassifierTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var train = LabelledImages.FromFashionMnist(FashionMnist.Load(train: true), "Fashion-MNIST training split");
        var test = LabelledImages.FromFashionMnist(FashionMnist.Load(train: false), "Fashion-MNIST test split");
        return TrainAndSave(Judge.FashionClassifierName, directory, train, test, options ?? ClassifierOptions, progress, cancellationToken);
    }

    /// <summary>
    /// Trains the judge on the Fashion colours training split with all 80 combinations (the judge must
    /// recognise the held-out ones too) and tests it on the test split.
    /// </summary>
    public static JudgeReport TrainFashionColoursJudge(string directory, ClassifierTrainingOptions? options = null, FashionColoursOptions? data = null,
        IProgress<ClassifierTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var train = LabelledImages.FromFashionColours(FashionColours.Load(train: true, data, includeHeldOut: true), "Fashion colours training split (all 80 combinations)");
        var test = LabelledImages.FromFashionColours(FashionColours.Load(train: false, data, includeHeldOut: true), "Fashion colours test split");
        return TrainAndSave(Judge.FashionColoursJudgeName, directory, train, test, options ?? ColoursJudgeOptions, progress, cancellationToken);
    }

    private static JudgeReport TrainAndSave(string name, string directory, LabelledImages train, LabelledImages test, ClassifierTrainingOptions options,
        IProgress<ClassifierTrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var trained = ClassifierTraining.Train(train, options, progress, cancellationToken);
        using var model = trained.Model;
        var accuracy = ClassifierTraining.Evaluate(model, test, cancellationToken: cancellationToken);
        var statistics = ClassifierTraining.FeatureStatisticsOf(model, test, cancellationToken: cancellationToken);
        var report = new JudgeReport(
            name, test.Name, accuracy.Count, Math.Round(accuracy.ClassAccuracy, 4), accuracy.ColourAccuracy is { } c ? Math.Round(c, 4) : null,
            FashionMnist.ClassNames.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => Math.Round(accuracy.PerClassAccuracy[p.i], 4)),
            model.ParameterCount,
            new JudgeTrainingRecord(train.Name, train.Count, options.Epochs, trained.Losses.Count, options.BatchSize, options.LearningRate,
                Augmentation(options),
                Math.Round(trained.Losses.TakeLast(50).Average(), 4), Math.Round(trained.Elapsed.TotalSeconds, 1), Math.Round(trained.CpuTime.TotalSeconds, 1), Machine()));
        model.Save(directory);
        statistics.Save(Path.Combine(directory, Judge.StatisticsFile));
        AtomicFile.WriteAllText(Path.Combine(directory, Judge.AccuracyFile), System.Text.Json.JsonSerializer.Serialize(report, JudgeReport.JsonOptions) + "\n");
        return report;
    }

    private static string Augmentation(ClassifierTrainingOptions options)
    {
        var parts = new List<string>();
        if (options.RandomFlip) parts.Add("random horizontal flip");
        if (options.RandomRecolour) parts.Add("random re-tint");
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }

    /// <summary>"Intel Xeon …, 2 cores, libtorch 1.13.1, 2 threads": where the training time was measured.</summary>
    public static string Machine()
    {
        var cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException)
        {
        }
        return $"{cpu}, {Environment.ProcessorCount} cores, libtorch {TorchRuntime.LibTorchVersion}, {TorchRuntime.Threads} threads";
    }

    private static IProgress<ClassifierTrainingProgress>? Forward(string judge, IProgress<JudgeTrainingProgress>? progress) =>
        progress is null ? null : new SynchronousProgress<ClassifierTrainingProgress>(p => progress.Report(new JudgeTrainingProgress(judge, p)));

    /// <summary>Reports on the caller's thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

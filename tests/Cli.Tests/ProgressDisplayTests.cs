using LatentDiffusion.Pipeline;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Training;
using LatentDiffusion.Training.Evaluation;

namespace LatentDiffusion.Cli.Tests;

/// <summary>The one progress display, in its redirected mode (plain lines on a captured writer).</summary>
public sealed class ProgressDisplayTests
{
    private TimeSpan now;
    private readonly StringWriter text = new();

    private ProgressDisplay Display(string title) => new(text, title, TimeSpan.FromSeconds(10), () => now);

    private string[] Lines => text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();

    private static TrainingProgress Step(long step, string? e = null, IReadOnlyList<KeyValuePair<string, double>>? metrics = null) =>
        new(step, 100, 0.5, 1e-4, 4.0, TimeSpan.Zero, TimeSpan.FromSeconds((100 - step) / 4.0), e, metrics);

    [Fact]
    public void TrainingLinesAreThrottledButEventsAndTheEndAlwaysShow()
    {
        var progress = Display("ddpm tiny").Sink<TrainingProgress>(ProgressText.Of);
        void At(double seconds, TrainingProgress p) { now = TimeSpan.FromSeconds(seconds); progress.Report(p); }

        At(0.2, Step(1));
        At(0.4, Step(2));                              // too soon
        At(12, Step(50));
        At(12.1, Step(50, "checkpoint step-000050"));
        At(12.2, Step(51));                            // too soon
        At(13, Step(100));                             // the last step always

        Assert.Equal(
        [
            "ddpm tiny: step 1/100 · loss 0.5000 · lr 1.00e-04 · 4.00 it/s · ETA 0:24",
            "ddpm tiny: step 50/100 · loss 0.5000 · lr 1.00e-04 · 4.00 it/s · ETA 0:12",
            "ddpm tiny: step 50 · checkpoint step-000050",
            "ddpm tiny: step 100/100 · loss 0.5000 · lr 1.00e-04 · 4.00 it/s · ETA 0:00",
        ], Lines);
    }

    [Fact]
    public void TrainingShowsTheTasksMetricsAndNoLossBeforeTheFirstStep()
    {
        var update = ProgressText.Of(Step(7, metrics: [new("d_loss", 0.98712), new("d_weight", 0.0213)]));
        Assert.Equal("step 7/100 · loss 0.5000 · d_loss 0.9871 · d_weight 0.0213 · lr 1.00e-04 · 4.00 it/s", update.Text);
        Assert.Equal("7/100 loss 0.5000 d_loss 0.9871 4.00 it/s", update.Short); // the bar: only the first metric
        Assert.Equal(TimeSpan.FromSeconds(93 / 4.0), update.Remaining);
        Assert.False(update.IsEvent);
        Assert.StartsWith("step 0/100 · loss – ·", ProgressText.Of(Step(0) with { Loss = double.NaN }).Text);
        Assert.True(ProgressText.Of(Step(3, "samples skipped: cancelled")).IsEvent);
    }

    [Fact]
    public void EvaluationEstimatesItsOwnEta()
    {
        var progress = Display("eval ddpm").Sink<EvaluationProgress>(ProgressText.Of);
        now = TimeSpan.FromSeconds(1);
        progress.Report(new EvaluationProgress(100, 1000));
        now = TimeSpan.FromSeconds(21);
        progress.Report(new EvaluationProgress(300, 1000)); // 200 images in 20 s: 700 more take 70 s
        now = TimeSpan.FromSeconds(22);
        progress.Report(new EvaluationProgress(1000, 1000));

        Assert.Equal(["eval ddpm: 100/1000 images", "eval ddpm: 300/1000 images · ETA 1:10", "eval ddpm: 1000/1000 images"], Lines);
    }

    [Fact]
    public void GenerationSamplingAndJudgesAreWordedByStep()
    {
        var display = Display("x");
        display.Sink<GenerationProgress>(ProgressText.Of).Report(new GenerationProgress(30, 30, 1.5, TimeSpan.FromSeconds(3)));
        display.Sink<DdpmProgress>(ProgressText.Of).Report(new DdpmProgress(1000, 1000, 0));
        display.Sink<JudgeTrainingProgress>(ProgressText.Of).Report(
            new JudgeTrainingProgress("fashion-classifier", new ClassifierTrainingProgress(1876, 1876, 4, 0.41213, 1e-3, TimeSpan.Zero)));
        display.Note("stopping");

        Assert.Equal(["x: step 30/30 (t=1.5)", "x: step 1000/1000", "x: fashion-classifier step 1876/1876 · epoch 4 · loss 0.4121", "x: stopping"], Lines);
        Assert.Equal("1:03:05", ProgressDisplay.Format(new TimeSpan(1, 3, 5)));
    }
}

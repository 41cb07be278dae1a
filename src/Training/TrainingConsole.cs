using System.Globalization;
using Spectre.Console;

namespace LatentDiffusion.Training;

/// <summary>
/// Shows training progress: a live Spectre.Console bar (step, loss, it/s, ETA, latest event) on an
/// interactive terminal, plain lines when the output is redirected (logs, CI), where a redrawn bar
/// would be noise.
/// </summary>
public static class TrainingConsole
{
    /// <summary>Runs <paramref name="train"/>, handing it the progress sink that suits the console.</summary>
    public static T Run<T>(string title, Func<IProgress<TrainingProgress>, T> train, IAnsiConsole? console = null)
    {
        console ??= AnsiConsole.Console;
        if (Console.IsOutputRedirected || !console.Profile.Capabilities.Interactive)
            return train(new PlainTrainingProgress(Console.Out));
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(title), autoStart: true, maxValue: 1);
                result = train(new BarProgress(task, title));
                task.StopTask();
            });
        return result;
    }

    /// <summary>"step 1200/20000 · loss 0.0412 · d_loss 0.9871 · d_weight 0.0213 · lr 1.00e-04 · 5.2 it/s · ETA 1:03:05".</summary>
    public static string Describe(TrainingProgress p)
    {
        var parts = new List<string>
        {
            $"step {p.Step}/{p.MaxSteps}",
            double.IsNaN(p.Loss) ? "loss –" : string.Create(CultureInfo.InvariantCulture, $"loss {p.Loss:F4}"),
        };
        parts.AddRange((p.Metrics ?? []).Select(Metric));
        parts.AddRange(
        [
            string.Create(CultureInfo.InvariantCulture, $"lr {p.LearningRate:0.00e+00}"),
            string.Create(CultureInfo.InvariantCulture, $"{p.StepsPerSecond:F2} it/s"),
        ]);
        if (p.Remaining is { } eta) parts.Add("ETA " + Format(eta));
        return string.Join(" · ", parts);
    }

    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes}:{t.Seconds:D2}";

    /// <summary>The bar's text, short enough to leave the bar room on an 80-column terminal: only the task's first metric.</summary>
    public static string DescribeShort(TrainingProgress p)
    {
        var loss = double.IsNaN(p.Loss) ? "–" : p.Loss.ToString("F4", CultureInfo.InvariantCulture);
        var metric = p.Metrics is [var first, ..] ? " " + Metric(first) : "";
        var eta = p.Remaining is { } r ? " ETA " + Format(r) : "";
        return string.Create(CultureInfo.InvariantCulture, $"{p.Step}/{p.MaxSteps} loss {loss}{metric} {p.StepsPerSecond:F2} it/s{eta}");
    }

    private static string Metric(KeyValuePair<string, double> m) => string.Create(CultureInfo.InvariantCulture, $"{m.Key} {m.Value:G4}");

    private sealed class BarProgress(ProgressTask task, string title) : IProgress<TrainingProgress>
    {
        // Events (checkpoints, grids) are rare and long: the bar shows steps, loss, the task's first metric, speed and ETA only.
        public void Report(TrainingProgress value)
        {
            task.MaxValue = Math.Max(1, value.MaxSteps);
            task.Value = value.Step;
            task.Description = Markup.Escape($"{title} {DescribeShort(value)}");
        }
    }
}

/// <summary>
/// Progress as plain lines: every event (checkpoint, samples, export), the first step, the last,
/// and otherwise at most one line per <paramref name="interval"/> (10 s by default).
/// </summary>
public sealed class PlainTrainingProgress(TextWriter output, TimeSpan? interval = null) : IProgress<TrainingProgress>
{
    private readonly TimeSpan every = interval ?? TimeSpan.FromSeconds(10);
    private TimeSpan? last;

    public void Report(TrainingProgress value)
    {
        if (value.Event is { } e)
        {
            output.WriteLine($"step {value.Step}: {e}");
            return;
        }
        if (value.Step != value.MaxSteps && last is { } previous && value.Elapsed - previous < every) return;
        last = value.Elapsed;
        output.WriteLine(TrainingConsole.Describe(value));
    }
}

/// <summary>
/// Ctrl+C for a training command: the first press cancels the token (the trainer writes a
/// checkpoint and returns), a second press ends the process at once, as Ctrl+C normally does.
/// </summary>
public sealed class CtrlCCancellation : IDisposable
{
    private readonly CancellationTokenSource source = new();
    private readonly TextWriter? message;

    public CancellationToken Token => source.Token;

    public CtrlCCancellation(TextWriter? message = null)
    {
        this.message = message;
        Console.CancelKeyPress += OnCancelKeyPress;
    }

    private void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e)
    {
        if (source.IsCancellationRequested) return; // second press: let the process end
        e.Cancel = true;
        message?.WriteLine("stopping after this step and writing a checkpoint (press Ctrl+C again to quit at once)");
        source.Cancel();
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancelKeyPress;
        source.Dispose();
    }
}

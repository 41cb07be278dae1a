using System.Diagnostics;
using Spectre.Console;

namespace LatentDiffusion.Cli;

/// <summary>One moment of a long command's progress, as <see cref="ProgressDisplay"/> shows it.</summary>
/// <param name="Done">Units done (steps, images).</param>
/// <param name="Total">Units in all.</param>
/// <param name="Text">The full text ("step 120/2000 · loss 0.0412 · lr 1.00e-04 · 5.20 it/s"), without title or ETA.</param>
/// <param name="Short">A shorter text that leaves the bar room on an 80-column terminal, or null for <paramref name="Text"/>.</param>
/// <param name="Remaining">The producer's own estimate of the time left (training leaves out sampling and checkpoints);
/// null lets the display estimate it from the rate of <paramref name="Done"/>.</param>
/// <param name="IsEvent">Something happened (checkpoint written, samples skipped): always shown, as a line of its own.</param>
public sealed record ProgressUpdate(long Done, long Total, string Text, string? Short = null, TimeSpan? Remaining = null, bool IsEvent = false);

/// <summary>
/// The progress display of every long command (train, toy, judges, eval, sample, generate), on standard
/// error through <see cref="CliContext"/>: a live Spectre bar when standard error is an interactive
/// terminal; otherwise plain lines (logs, CI, tests), where a redrawn bar would be noise: every event,
/// the first update, the last, and in between at most one line per interval (10 s by default).
/// Libraries report through <see cref="IProgress{T}"/>; <see cref="Sink{T}"/> turns their records
/// into <see cref="ProgressUpdate"/>s (see <see cref="ProgressText"/>).
/// </summary>
public sealed class ProgressDisplay
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(10);

    private readonly Lock gate = new(); // Note() may come from the Ctrl+C thread while the work reports
    private readonly string title;
    private readonly TextWriter? lines;
    private readonly IAnsiConsole? console;
    private readonly ProgressTask? bar;
    private readonly TimeSpan interval;
    private readonly Func<TimeSpan> clock;
    private TimeSpan? lastLine;
    private (long Done, TimeSpan At)? first;

    /// <summary>A display of plain lines on <paramref name="output"/>; <paramref name="clock"/> (elapsed time) is for tests.</summary>
    public ProgressDisplay(TextWriter output, string title, TimeSpan? interval = null, Func<TimeSpan>? clock = null)
        : this(title, clock)
    {
        lines = output;
        this.interval = interval ?? DefaultInterval;
    }

    private ProgressDisplay(IAnsiConsole console, ProgressTask bar, string title) : this(title, null)
    {
        this.console = console;
        this.bar = bar;
    }

    private ProgressDisplay(string title, Func<TimeSpan>? clock)
    {
        this.title = title;
        if (clock is null)
        {
            var watch = Stopwatch.StartNew();
            clock = () => watch.Elapsed;
        }
        this.clock = clock;
    }

    /// <summary>
    /// Runs <paramref name="work"/> with a display that suits <see cref="CliContext.Err"/>. With
    /// <paramref name="clearWhenDone"/>, the bar disappears at the end (generation, whose result is a file name).
    /// </summary>
    public static T Run<T>(CliContext context, string title, Func<ProgressDisplay, T> work, bool clearWhenDone = false)
    {
        if (!context.ErrorIsTerminal) return work(new ProgressDisplay(context.Err, title));
        T result = default!;
        context.ErrorConsole.Progress()
            .AutoClear(clearWhenDone)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(progress =>
            {
                var task = progress.AddTask(Markup.Escape(title), autoStart: true, maxValue: 1);
                result = work(new ProgressDisplay(context.ErrorConsole, task, title));
                task.StopTask();
            });
        return result;
    }

    /// <summary>A progress sink, reporting on the caller's thread, that shows each value as <paramref name="describe"/> words it.</summary>
    public IProgress<T> Sink<T>(Func<T, ProgressUpdate> describe) => new Forward<T>(this, describe);

    /// <summary>Shows <paramref name="update"/>.</summary>
    public void Report(ProgressUpdate update)
    {
        lock (gate)
        {
            var now = clock();
            if (!update.IsEvent) first ??= (update.Done, now);
            if (update.IsEvent)
                WriteLine(update.Text);
            else if (bar is not null)
            {
                bar.MaxValue = Math.Max(1, update.Total);
                bar.Value = update.Done;
                bar.Description = Markup.Escape($"{title} {update.Short ?? update.Text}{Eta(update, now, " ETA ")}");
            }
            else if (update.Done >= update.Total || lastLine is not { } previous || now - previous >= interval)
            {
                lastLine = now;
                WriteLine(update.Text + Eta(update, now, " · ETA "));
            }
        }
    }

    /// <summary>A line that always shows ("stopping after this step…"), above the bar on a terminal.</summary>
    public void Note(string message)
    {
        lock (gate) WriteLine(message);
    }

    /// <summary>"1:03:05" from an hour on, "4:05" below.</summary>
    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes}:{t.Seconds:D2}";

    private void WriteLine(string text)
    {
        var line = $"{title}: {text}";
        if (console is not null) console.WriteLine(line); // Spectre draws it above the live bar
        else lines!.WriteLine(line);
    }

    private string Eta(ProgressUpdate update, TimeSpan now, string prefix)
    {
        var remaining = update.Remaining;
        if (remaining is null && first is { } f && update.Done > f.Done && update.Done < update.Total)
            remaining = (now - f.At) / (update.Done - f.Done) * (update.Total - update.Done);
        return remaining is { } r ? prefix + Format(r) : "";
    }

    private sealed class Forward<T>(ProgressDisplay display, Func<T, ProgressUpdate> describe) : IProgress<T>
    {
        public void Report(T value) => display.Report(describe(value));
    }
}

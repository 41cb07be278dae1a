using System.Globalization;
using LatentDiffusion.Pipeline.StableDiffusion;
using Spectre.Console;

namespace LatentDiffusion.Cli.Generation;

/// <summary>
/// Denoising progress on standard error: a live bar on a terminal, one line per step otherwise; with
/// <c>previewPath</c>, each preview the pipeline reports replaces that PNG (written whole, then renamed).
/// </summary>
internal static class GenerationConsole
{
    public static T Run<T>(CliContext context, string title, string? previewPath, Func<IProgress<GenerationProgress>, T> generate)
    {
        Func<IProgress<GenerationProgress>, T> run = previewPath is null ? generate : inner => generate(new PreviewWriter(inner, previewPath));
        if (!ReferenceEquals(context.Err, Console.Error) || Console.IsErrorRedirected)
            return run(new LineProgress(context.Err));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(progress =>
            {
                var task = progress.AddTask(Markup.Escape(title), maxValue: 1);
                result = run(new BarProgress(task, title));
                task.StopTask();
            });
        return result;
    }

    private static string Describe(GenerationProgress p) =>
        string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} (t={p.Timestep:0.#}) {p.Elapsed.TotalSeconds:F1}s");

    private sealed class BarProgress(ProgressTask task, string title) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value)
        {
            task.MaxValue = value.TotalSteps;
            task.Value = value.Step;
            task.Description = Markup.Escape($"{title} {value.Step}/{value.TotalSteps}");
        }
    }

    private sealed class LineProgress(TextWriter writer) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value) => writer.WriteLine(Describe(value));
    }

    private sealed class PreviewWriter(IProgress<GenerationProgress> inner, string path) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value)
        {
            value.Preview?.SavePng(path);
            inner.Report(value);
        }
    }
}

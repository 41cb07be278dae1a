using System.Globalization;
using LatentDiffusion.Training;

namespace LatentDiffusion.Cli.Commands;

/// <summary>
/// What the training commands (train ddpm/vae/ldm, toy) share: the progress display, the Ctrl+C notice
/// (Program.cs turns the first Ctrl+C into the command's cancellation token; the trainer then writes a
/// checkpoint and returns, and a second Ctrl+C ends the process at once), the summary and the exit code:
/// 0 done, 130 stopped (<see cref="ErrorReporter.Cancelled"/>, as shells report SIGINT).
/// </summary>
internal static class TrainingRun
{
    /// <summary>
    /// Runs <paramref name="train"/> under <paramref name="title"/>; prints the summary of <paramref name="result"/>(outcome)
    /// and, when training completed, <paramref name="report"/>(outcome).
    /// </summary>
    public static int Run<T>(CliContext context, string title, string outputDirectory, CancellationToken cancellationToken,
        Func<IProgress<TrainingProgress>, CancellationToken, T> train, Func<T, TrainingResult> result, Action<T>? report = null)
    {
        var outcome = ProgressDisplay.Run(context, title, display =>
        {
            using var notice = cancellationToken.Register(() =>
                display.Note("stopping after this step and writing a checkpoint (press Ctrl+C again to quit at once)"));
            return train(display.Sink<TrainingProgress>(ProgressText.Of), cancellationToken);
        });
        var code = Summarize(result(outcome), outputDirectory, context.Out);
        if (code == 0) report?.Invoke(outcome);
        return code;
    }

    private static int Summarize(TrainingResult result, string outputDirectory, TextWriter output)
    {
        var speed = result.StepsPerSecond.ToString("F2", CultureInfo.InvariantCulture);
        if (result.Cancelled)
        {
            output.WriteLine($"stopped at step {result.Step} ({speed} it/s); checkpoint written: resume with --resume into {outputDirectory}");
            return ErrorReporter.Cancelled;
        }
        var from = result.ResumedFrom is { } r ? $" (resumed from step {r})" : "";
        output.WriteLine($"trained {result.Step} steps{from} at {speed} it/s; model: {result.ModelDirectory}");
        return 0;
    }
}

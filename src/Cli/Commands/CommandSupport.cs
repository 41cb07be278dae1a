using System.CommandLine;
using Spectre.Console;

namespace LatentDiffusion.Cli.Commands;

/// <summary>Shared pieces of the train, toy, sample, eval and bench-model commands.</summary>
internal static class CommandSupport
{
    /// <summary>Rejects a path that is not an existing file, with a parse error naming the option.</summary>
    public static Option<string> ExistingFile(this Option<string> option)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && !File.Exists(result.Tokens[0].Value))
                result.AddError($"{option.Name}: {result.Tokens[0].Value}: file not found");
        });
        return option;
    }

    /// <summary>Rejects a path that is not an existing folder, with a parse error naming the option.</summary>
    public static Option<string> ExistingDirectory(this Option<string> option)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && !Directory.Exists(result.Tokens[0].Value))
                result.AddError($"{option.Name}: {result.Tokens[0].Value}: folder not found");
        });
        return option;
    }

    /// <summary>Rejects values outside <paramref name="allowed"/> (case-insensitive), listing them.</summary>
    public static Option<string> OneOf(this Option<string> option, params string[] allowed)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && !allowed.Contains(result.Tokens[0].Value, StringComparer.OrdinalIgnoreCase))
                result.AddError($"{option.Name} must be one of {string.Join(", ", allowed)}, got '{result.Tokens[0].Value}'");
        });
        return option;
    }

    /// <summary>
    /// Runs <paramref name="work"/> with a progress sink: a Spectre bar on standard error when it is an
    /// interactive terminal, otherwise a plain line on <see cref="CliContext.Err"/> at most every 10 s and at the end.
    /// </summary>
    public static T WithProgress<T>(CliContext context, string title, Func<Action<int, int, string?>, T> work)
    {
        var interactive = ReferenceEquals(context.Err, System.Console.Error) && !System.Console.IsErrorRedirected;
        if (!interactive)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            TimeSpan? last = null;
            return work((done, total, note) =>
            {
                if (done != total && last is { } previous && watch.Elapsed - previous < TimeSpan.FromSeconds(10)) return;
                last = watch.Elapsed;
                context.Err.WriteLine($"{title}: {done}/{total}{(note is null ? "" : " " + note)}");
            });
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(System.Console.Error),
            Ansi = context.ErrorIsColoured ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = context.ErrorIsColoured ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.Detect,
        });
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), autoStart: true, maxValue: 1);
                result = work((done, total, note) =>
                {
                    task.MaxValue = Math.Max(1, total);
                    task.Value = done;
                    if (note is not null) task.Description = Markup.Escape($"{title} {note}");
                });
                task.StopTask();
            });
        return result;
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread.</summary>
    public sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    public static string F(double value, int decimals) => value.ToString("F" + decimals, System.Globalization.CultureInfo.InvariantCulture);
}

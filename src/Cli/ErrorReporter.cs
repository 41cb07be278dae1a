using System.Reflection;
using System.Text.Json;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli;

/// <summary>
/// Turns any failure into one red line on standard error and an exit code. The stack trace is
/// printed only with <c>--verbose</c>.
/// </summary>
public static class ErrorReporter
{
    /// <summary>A command failed (an exception).</summary>
    public const int Failure = 1;

    /// <summary>The command line could not be parsed (unknown command, bad option value…).</summary>
    public const int Usage = 2;

    /// <summary>Cancelled with Ctrl+C (128 + SIGINT, as shells report it).</summary>
    public const int Cancelled = 130;

    public static int Report(Exception exception, CliContext context, bool verbose)
    {
        var e = Unwrap(exception);
        if (e is OperationCanceledException)
        {
            WriteLine(context, "cancelled");
            return Cancelled;
        }
        if (e is UsageException)
        {
            WriteLine(context, e.Message);
            return Usage;
        }
        WriteLine(context, Describe(e));
        if (verbose) context.Err.WriteLine(exception.ToString());
        return Failure;
    }

    /// <summary>Prints <paramref name="message"/> as the single red error line.</summary>
    public static void WriteLine(CliContext context, string message) => context.Error(OneLine(message));

    /// <summary>The message a user sees for <paramref name="e"/>: the message itself for the errors a
    /// user can cause and fix, the exception type as well for anything that points at a bug.</summary>
    public static string Describe(Exception e)
    {
        var message = OneLine(e.Message);
        if (e is ArgumentException { ParamName: { } name })
        {
            // .NET appends " (Parameter 'x')"; the text already names the option, so show the value instead.
            message = message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal);
            if (e is ArgumentOutOfRangeException { ActualValue: { } value }) message += $" (got {value})";
        }
        return e switch
        {
            TorchException => message, // already "operation: message"
            // The project's own exception types (bad images, weights, configs, recipes, vocabularies) carry user-facing messages.
            _ when e.GetType().Namespace?.StartsWith("LatentDiffusion.", StringComparison.Ordinal) == true => message,
            FileNotFoundException f when f.FileName is not null && !message.Contains(f.FileName, StringComparison.Ordinal) =>
                $"{message} ({f.FileName})",
            ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or FormatException
                or NotSupportedException or JsonException or InvalidOperationException or TimeoutException
                or DllNotFoundException or EntryPointNotFoundException or OutOfMemoryException => message,
            _ => $"internal error ({e.GetType().Name}): {message}; run with --verbose for the stack trace",
        };
    }

    internal static Exception Unwrap(Exception e)
    {
        while (true)
        {
            switch (e)
            {
                case AggregateException { InnerExceptions.Count: 1 } a: e = a.InnerExceptions[0]; continue;
                case TargetInvocationException { InnerException: { } inner }: e = inner; continue;
                case TypeInitializationException { InnerException: { } inner }: e = inner; continue;
                default: return e;
            }
        }
    }

    private static string OneLine(string message)
    {
        var lines = message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "failed" : lines[0];
    }
}

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>How a case is judged: the error a user would see, and what a correct result leaves behind.</summary>
public static class FuzzVerdict
{
    /// <summary><see cref="FuzzOutcome.Refused"/> when the CLI would print <paramref name="e"/> as one clear line that names one of
    /// <paramref name="names"/> (the file, field or option); <see cref="FuzzOutcome.Bug"/> otherwise.</summary>
    public static (FuzzOutcome Outcome, string Message) OfException(Exception e, params IEnumerable<string?> names)
    {
        var inner = ErrorReporter.Unwrap(e);
        var message = ErrorReporter.Describe(inner);
        if (message.StartsWith("internal error", StringComparison.Ordinal) || inner is OperationCanceledException)
            return (FuzzOutcome.Bug, message);
        return OfMessage(message, names);
    }

    /// <summary>Checks that an error line names one of <paramref name="names"/>.</summary>
    public static (FuzzOutcome Outcome, string Message) OfMessage(string message, IEnumerable<string?> names)
    {
        var wanted = names.OfType<string>().Where(n => n.Length > 0).Distinct().ToList();
        return wanted.Count == 0 || wanted.Any(n => message.Contains(n, StringComparison.OrdinalIgnoreCase))
            ? (FuzzOutcome.Refused, message)
            : (FuzzOutcome.Bug, $"the error names none of {string.Join(", ", wanted)}: {message}");
    }

    /// <summary>A temporary file or folder (*.tmp) left in <paramref name="folder"/>, or null.</summary>
    public static string? Leftover(string folder) =>
        Directory.Exists(folder)
            ? Directory.EnumerateFileSystemEntries(folder, "*.tmp", SearchOption.AllDirectories).FirstOrDefault()
            : null;
}

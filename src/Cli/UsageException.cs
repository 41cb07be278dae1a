namespace LatentDiffusion.Cli;

/// <summary>
/// An option value found wrong only after parsing, e.g. against the loaded model (--clip-skip beyond its text encoder's
/// layers): reported like a parse error, one line and exit code <see cref="ErrorReporter.Usage"/>.
/// </summary>
internal sealed class UsageException(string message) : Exception(message);

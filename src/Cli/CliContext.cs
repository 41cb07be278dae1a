using Spectre.Console;

namespace LatentDiffusion.Cli;

/// <summary>
/// Where a command writes: standard output for results (tables, JSON), standard error for errors,
/// warnings and progress. Colour is used only when the writer is the real, unredirected terminal,
/// so output captured by a pipe, a file or a test stays plain text.
/// </summary>
public sealed class CliContext
{
    public CliContext(TextWriter output, TextWriter error)
    {
        Out = output;
        Err = error;
        Console = CreateConsole(output, isTerminal: ReferenceEquals(output, System.Console.Out) && !System.Console.IsOutputRedirected);
        ErrorIsTerminal = ReferenceEquals(error, System.Console.Error) && !System.Console.IsErrorRedirected;
        ErrorIsColoured = ErrorIsTerminal && ColourAllowed;
        ErrorConsole = CreateConsole(error, ErrorIsTerminal);
    }

    /// <summary>Standard output: results only, so that <c>--json</c> output can be piped.</summary>
    public TextWriter Out { get; }

    /// <summary>Standard error: errors, warnings, progress.</summary>
    public TextWriter Err { get; }

    /// <summary>A Spectre console over <see cref="Out"/> for tables.</summary>
    public IAnsiConsole Console { get; }

    /// <summary>A Spectre console over <see cref="Err"/>, for progress bars.</summary>
    public IAnsiConsole ErrorConsole { get; }

    /// <summary>Whether <see cref="Err"/> is the real, unredirected terminal (where a live progress bar makes sense).</summary>
    public bool ErrorIsTerminal { get; }

    /// <summary>Whether lines on <see cref="Err"/> get ANSI colours.</summary>
    public bool ErrorIsColoured { get; }

    /// <summary>Prints one yellow warning line on standard error.</summary>
    public void Warn(string message) => WriteErrorLine("WARNING: " + message, "33");

    /// <summary>Prints one red error line on standard error.</summary>
    public void Error(string message) => WriteErrorLine("error: " + message, "31");

    // Written directly rather than through Spectre, which would wrap a long line at 80 columns
    // when the writer is not a terminal: an error must stay one line for scripts and logs.
    private void WriteErrorLine(string line, string colour) =>
        Err.WriteLine(ErrorIsColoured ? $"\e[{colour}m{line}\e[0m" : line);

    private static bool ColourAllowed => string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"));

    private static IAnsiConsole CreateConsole(TextWriter writer, bool isTerminal)
    {
        var colour = isTerminal && ColourAllowed;
        return AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = colour ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = colour ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = isTerminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
    }
}

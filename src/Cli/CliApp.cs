using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Reflection;
using LatentDiffusion.Cli.Commands;

namespace LatentDiffusion.Cli;

/// <summary>
/// The <c>ldm</c> command line. <see cref="Run"/> and <see cref="RunAsync"/> are the whole program
/// (Program.cs only wires Ctrl+C), so tests run it in-process with their own writers.
/// </summary>
public static class CliApp
{
    /// <summary>The informational version of this assembly ("0.1.0+commit").</summary>
    public static string Version { get; } =
        typeof(CliApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(CliApp).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    /// <summary>Runs <c>ldm</c> with <paramref name="args"/>; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default) =>
        RunAsync(args, output, error, cancellationToken).GetAwaiter().GetResult();

    /// <summary>Runs <c>ldm</c> with <paramref name="args"/>; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var context = new CliContext(output, error);
        var verbose = new Option<bool>("--verbose", "-v")
        {
            Description = "Print the stack trace of an error",
            Recursive = true,
        };
        var root = BuildRootCommand(context, verbose);

        ParseResult parsed;
        try
        {
            parsed = root.Parse(args);
        }
        catch (Exception e)
        {
            return ErrorReporter.Report(e, context, verbose: args.Contains("--verbose"));
        }

        if (parsed.Errors.Count > 0 && parsed.Action is not HelpAction)
        {
            ErrorReporter.WriteLine(context, DescribeParseErrors(parsed));
            return ErrorReporter.Usage;
        }

        var configuration = new InvocationConfiguration
        {
            Output = output,
            Error = error,
            EnableDefaultExceptionHandler = false, // ErrorReporter does it: one line, no stack trace
            ProcessTerminationTimeout = null,      // Program.cs owns Ctrl+C; in-process callers pass a token
        };
        try
        {
            return await parsed.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            return ErrorReporter.Report(e, context, parsed.GetValue(verbose));
        }
    }

    /// <summary>
    /// The command tree. Each command group lives in its own file under Commands/ and is added
    /// here with one line.
    /// </summary>
    internal static RootCommand BuildRootCommand(CliContext context, Option<bool> verbose)
    {
        var root = new RootCommand("LatentDiffusion.NET: Stable-Diffusion-class latent diffusion in C# on libtorch");
        root.Options.Add(verbose);
        foreach (var option in root.Options.OfType<VersionOption>())
            option.Action = new VersionAction();

        root.Subcommands.Add(InfoCommand.Create(context));
        root.Subcommands.Add(GenerateCommand.CreateGenerate(context));
        root.Subcommands.Add(GenerateCommand.CreateImageToImage(context));
        root.Subcommands.Add(GenerateCommand.CreateInpaint(context));
        root.Subcommands.Add(GenerateCommand.CreateOutpaint(context));
        root.Subcommands.Add(ModelToolsCommands.CreateConvert(context));
        root.Subcommands.Add(ExportCommand.Create(context));
        root.Subcommands.Add(ModelToolsCommands.CreateTokenize(context));
        root.Subcommands.Add(ModelToolsCommands.CreateVae(context));
        root.Subcommands.Add(BenchCommand.Create(context));
        root.Subcommands.Add(TrainCommand.Create(context));
        root.Subcommands.Add(ToyCommand.Create(context));
        root.Subcommands.Add(SampleCommand.Create(context));
        root.Subcommands.Add(SamplersCommand.Create(context));
        root.Subcommands.Add(SamplerGridCommand.Create(context));
        root.Subcommands.Add(EvalCommand.Create(context));
        root.Subcommands.Add(FuzzCommand.Create(context));
        root.Subcommands.Add(ServeCommand.Create(context));
        ShowHelpWhenBare(root);
        return root;
    }

    /// <summary>A command group run without a subcommand (`ldm`, `ldm bench`) prints its help.</summary>
    internal static void ShowHelpWhenBare(Command command)
    {
        foreach (var sub in command.Subcommands) ShowHelpWhenBare(sub);
        if (command.Action is null && command.Subcommands.Count > 0)
            command.SetAction(parsed => new HelpAction().Invoke(parsed));
    }

    // One line for all parse errors, with a suggestion for a mistyped command.
    private static string DescribeParseErrors(ParseResult parsed)
    {
        var messages = parsed.Errors.Select(e => e.Message.TrimEnd('.')).Distinct().ToList();
        var line = string.Join("; ", messages);
        var command = parsed.CommandResult.Command;
        foreach (var token in parsed.UnmatchedTokens)
        {
            var suggestion = command.Subcommands.Select(c => c.Name)
                .Concat(command.Options.Where(o => !o.Hidden).Select(o => o.Name))
                .Select(name => (name, distance: Levenshtein(token, name)))
                .Where(c => c.distance <= Math.Max(1, c.name.Length / 3))
                .OrderBy(c => c.distance)
                .Select(c => c.name)
                .FirstOrDefault();
            if (suggestion is not null)
            {
                line += $" (did you mean '{suggestion}'?)";
                break;
            }
        }
        var path = string.Join(' ', CommandPath(parsed.CommandResult.Command, parsed.RootCommandResult.Command));
        return $"{line}; see 'ldm {path}{(path.Length > 0 ? " " : "")}--help'";
    }

    private static IEnumerable<string> CommandPath(Command command, Command root)
    {
        var names = new Stack<string>();
        for (Symbol? s = command; s is Command c && !ReferenceEquals(c, root); s = c.Parents.FirstOrDefault())
            names.Push(s.Name);
        return names;
    }

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    /// <summary>Prints this assembly's version (System.CommandLine's own would name the test host
    /// when the CLI runs in-process).</summary>
    private sealed class VersionAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(Version);
            return 0;
        }
    }
}

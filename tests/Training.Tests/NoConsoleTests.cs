using System.Reflection;
using System.Text.RegularExpressions;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>
/// DESIGN.md: libraries report progress through IProgress/events; only the CLI (and the server) talk to a
/// console, handle Ctrl+C or choose exit codes. Checked on the compiled assemblies and on the sources.
/// </summary>
public partial class NoConsoleTests
{
    /// <summary>Training and every LatentDiffusion library it builds on.</summary>
    private static List<Assembly> Libraries()
    {
        var found = new Dictionary<string, Assembly>();
        var pending = new Stack<Assembly>([typeof(Trainer).Assembly]);
        while (pending.TryPop(out var assembly))
        {
            if (!found.TryAdd(assembly.GetName().Name!, assembly)) continue;
            foreach (var reference in assembly.GetReferencedAssemblies().Where(r => r.Name!.StartsWith("LatentDiffusion.", StringComparison.Ordinal)))
                pending.Push(Assembly.Load(reference));
        }
        return [.. found.Values];
    }

    [Fact]
    public void NoLibraryAssemblyReferencesSpectreOrSystemConsole()
    {
        var libraries = Libraries();
        Assert.Contains(libraries, a => a.GetName().Name == "LatentDiffusion.Pipeline");
        foreach (var assembly in libraries)
        {
            var references = assembly.GetReferencedAssemblies().Select(r => r.Name).ToList();
            Assert.DoesNotContain("Spectre.Console", references);
            Assert.True(!references.Contains("System.Console"), $"{assembly.GetName().Name} uses System.Console");
        }
    }

    [GeneratedRegex(@"\bConsole\s*\.|\bSpectre\b|Environment\s*\.\s*Exit|\bExitCode\b|CancelKeyPress")]
    private static partial Regex ConsoleCode();

    [Fact]
    public void NoSourceOutsideTheCliTalksToAConsoleOrChoosesAnExitCode()
    {
        var src = Path.Combine(SharedData.RepositoryRoot, "src");
        var offending = Directory.EnumerateDirectories(src)
            .Where(project => Path.GetFileName(project) is not ("Cli" or "Server"))
            .SelectMany(project => Directory.EnumerateFiles(project, "*.*", SearchOption.AllDirectories))
            .Where(file => file.EndsWith(".cs", StringComparison.Ordinal) || file.EndsWith(".csproj", StringComparison.Ordinal))
            .Where(file => !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .SelectMany(file => File.ReadLines(file).Select((line, i) => (file, line, number: i + 1)))
            .Where(x => ConsoleCode().IsMatch(x.line))
            .Select(x => $"{Path.GetRelativePath(src, x.file)}:{x.number}: {x.line.Trim()}")
            .ToList();
        Assert.True(offending.Count == 0, "console code outside src/Cli:\n" + string.Join('\n', offending));
    }
}

namespace LatentDiffusion.Cli.Tests;

/// <summary>Runs <c>ldm</c> in-process and captures what it writes.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Out, string Err)
    {
        public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        /// <summary>Asserts a usage error: exit code 2, one "error: …" line that mentions <paramref name="mentioned"/>, nothing on standard output.</summary>
        public string AssertUsageError(string mentioned)
        {
            Assert.True(ExitCode == ErrorReporter.Usage, $"exit {ExitCode}: {Err}");
            var line = Assert.Single(ErrLines);
            Assert.StartsWith("error: ", line);
            Assert.Contains(mentioned, line);
            Assert.Equal("", Out);
            return line;
        }
    }

    public static Result Run(params string[] args) => Run(CancellationToken.None, args);

    public static Result Run(CancellationToken cancellationToken, params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = CliApp.Run(args, output, error, cancellationToken);
        return new Result(code, output.ToString(), error.ToString());
    }
}

using System.Reflection;

namespace LatentDiffusion.Cli.Tests;

public class VersionAndUsageTests
{
    [Fact]
    public void VersionPrintsTheAssemblyInformationalVersion()
    {
        var expected = typeof(CliApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;

        var r = CliRunner.Run("--version");

        Assert.Equal(0, r.ExitCode);
        Assert.Equal(expected, r.Out.Trim());
        Assert.StartsWith("0.1.0", r.Out);
        Assert.Equal("", r.Err);
    }

    [Fact]
    public void NoCommandPrintsHelp()
    {
        var r = CliRunner.Run();

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Usage:", r.Out);
        Assert.Contains("info", r.Out);
        Assert.Contains("bench", r.Out);
    }

    [Theory]
    [InlineData(new[] { "frobnicate" }, "frobnicate")]
    [InlineData(new[] { "inf" }, "did you mean 'info'?")]
    [InlineData(new[] { "info", "--bogus" }, "--bogus")]
    [InlineData(new[] { "info", "--jsn" }, "did you mean '--json'?")]
    [InlineData(new[] { "bench", "ops", "--repeat", "0" }, "--repeat must be at least 1")]
    [InlineData(new[] { "bench", "ops", "--repeat", "many" }, "Cannot parse argument 'many'")]
    [InlineData(new[] { "bench", "ops", "--threads", "-2" }, "--threads must be at least 0")]
    [InlineData(new[] { "--version", "extra" }, "extra")]
    public void UsageErrorsGiveOneClearLineAndANonZeroExitCode(string[] args, string mentioned)
    {
        var r = CliRunner.Run(args);

        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(ErrorReporter.Usage, r.ExitCode);
        var line = Assert.Single(r.ErrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains(mentioned, line);
        Assert.Contains("--help", line);
        Assert.DoesNotContain("\e[", line); // no colour codes when not writing to a terminal
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void HelpForASubcommandIsNotAnError()
    {
        var r = CliRunner.Run("bench", "ops", "--help");

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("--compare-wait-policy", r.Out);
        Assert.Contains("--repeat", r.Out);
    }
}

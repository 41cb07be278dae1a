using System.Reflection;
using System.Text.Json;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Tests;

public class ErrorReporterTests
{
    public static TheoryData<Exception, string> UserErrors => new()
    {
        { new TorchException("conv2d", "expected 4D input"), "error: conv2d: expected 4D input" },
        { new ArgumentException("steps must be positive"), "error: steps must be positive" },
        { new IOException("disk full"), "error: disk full" },
        { new FileNotFoundException("model not found", "/m/unet.safetensors"), "error: model not found (/m/unet.safetensors)" },
        { new InvalidDataException("header length 99 exceeds the file"), "error: header length 99 exceeds the file" },
        { new JsonException("bad config.json"), "error: bad config.json" },
        { new TargetInvocationException(new IOException("wrapped")), "error: wrapped" },
        { new AggregateException(new ArgumentException("inner")), "error: inner" },
        { new InvalidDataException("first line\nsecond line\n   at Some.Frame()"), "error: first line" },
    };

    [Theory]
    [MemberData(nameof(UserErrors))]
    public void AnExceptionBecomesOneLineAndExitCodeOne(Exception exception, string expected)
    {
        var (code, err) = Report(exception, verbose: false);

        Assert.Equal(ErrorReporter.Failure, code);
        Assert.Equal(expected, err.TrimEnd('\n'));
    }

    [Fact]
    public void AnUnexpectedExceptionNamesItsTypeAndPointsToVerbose()
    {
        var (code, err) = Report(new NullReferenceException("oops"), verbose: false);

        Assert.Equal(1, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("NullReferenceException", line);
        Assert.Contains("--verbose", line);
    }

    [Fact]
    public void VerbosePrintsTheStackTraceAfterTheLine()
    {
        Exception thrown;
        try { throw new IOException("cannot write"); }
        catch (IOException e) { thrown = e; }

        var (code, err) = Report(thrown, verbose: true);

        Assert.Equal(1, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("error: cannot write", lines[0]);
        Assert.Contains(lines, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
    }

    [Fact]
    public void CancellationIsReportedAsCancelled()
    {
        var (code, err) = Report(new OperationCanceledException(), verbose: false);

        Assert.Equal(ErrorReporter.Cancelled, code);
        Assert.Equal("error: cancelled", err.Trim());
    }

    private static (int Code, string Err) Report(Exception e, bool verbose)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = ErrorReporter.Report(e, new CliContext(output, error), verbose);
        Assert.Equal("", output.ToString());
        return (code, error.ToString().Replace("\r", ""));
    }
}

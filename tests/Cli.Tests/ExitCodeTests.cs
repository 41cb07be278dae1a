using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Tests;

/// <summary>
/// Exit codes: every kind of command-line mistake is one line and exit 2 (<see cref="ErrorReporter.Usage"/>), a failure
/// while running is exit 1, Ctrl+C 130 (tested with training in ModelCommandTests).
/// </summary>
public class ExitCodeTests
{
    [Theory]
    [InlineData("generate x --bogus", "'--bogus'")]                                  // unknown option
    [InlineData("generate", "Required argument missing")]                            // missing argument
    [InlineData("generate x --steps many", "Cannot parse argument 'many'")]          // not a number
    [InlineData("generate x --guidance inf", "Cannot parse argument 'inf'")]        // not a number .NET reads
    [InlineData("sample --model m --scheduler bogus", "--scheduler must be one of ddpm, ddim, got 'bogus'")] // a bad choice
    [InlineData("train judges bogus", "'bogus'")]                                    // a bad argument choice
    [InlineData("eval prompts --guidance 7", "Option '--model' is required")]        // missing required option
    [InlineData("generate x --eta nan", "--eta must be a finite number in [0, 1], got nan")] // out of range
    [InlineData("generate x --dtype f64", "--dtype must be f32, bf16, f16 or auto, got 'f64'")]
    [InlineData("generate x --device tpu", "--device: unknown device 'tpu'")]
    public void ParseErrorsExitWith2AndOneLine(string args, string expected) =>
        CliRunner.Run(args.Split(' ')).AssertUsageError(expected);

    [Theory]
    [InlineData(new[] { "generate", "x", "--attention-slicing", "0" }, "--attention-slicing must be at least 1, got 0")]
    [InlineData(new[] { "img2img", "x", "--init", "" }, "--init needs a path, got ''")]
    [InlineData(new[] { "sample", "--model", "m", "--out", " " }, "--out needs a path, got ' '")]
    [InlineData(new[] { "generate", "x", "--out", "a\0b.png" }, "--out: the path contains a NUL character")]
    public void AnUnusablePathOrSliceSizeIsAUsageErrorNamingTheOption(string[] args, string expected) =>
        CliRunner.Run(args).AssertUsageError(expected);

    [Fact]
    public void ARuntimeFailureExitsWith1()
    {
        var r = CliRunner.Run("generate", "x", "--model", Path.Combine(Path.GetTempPath(), "ld-no-such-model-" + Guid.NewGuid().ToString("N")));

        Assert.Equal(ErrorReporter.Failure, r.ExitCode);
        Assert.Contains("model folder not found", Assert.Single(r.ErrLines));
    }

    [Theory]
    [InlineData("generate")]
    [InlineData("img2img")]
    public void HalfPrecisionOnTheCpuIsRefusedInOneLineBeforeLoading(string command)
    {
        string[] extra = command == "img2img" ? ["--init", "missing.png"] : [];
        foreach (var device in new[] { "cpu", null })
        {
            string[] args = [command, "x", "--dtype", "f16", .. extra, .. device is null ? Array.Empty<string>() : ["--device", device]];
            CliRunner.Run(args).AssertUsageError("--dtype f16 needs a GPU (--device cuda); on the CPU use f32 or bf16");
        }
    }

    [Fact]
    public void BFloat16OnTheCpuStaysAllowed() =>
        Assert.Empty(CliApp.BuildRootCommand(new CliContext(TextWriter.Null, TextWriter.Null), new("--verbose"))
            .Parse(["generate", "x", "--dtype", "bf16", "--device", "cpu"]).Errors);

    [Theory]
    [InlineData("generate x --device {0}")]
    [InlineData("img2img x --init a.png --device {0}")]
    [InlineData("bench unet --device {0}")]
    public void AMissingCudaDeviceIsOneLineForEveryCommandWithADevice(string args)
    {
        var device = TorchRuntime.CudaIsAvailable ? $"cuda:{TorchRuntime.CudaDeviceCount}" : "cuda";
        var r = CliRunner.Run(string.Format(System.Globalization.CultureInfo.InvariantCulture, args, device).Split(' '));

        r.AssertUsageError(TorchRuntime.CudaIsAvailable
            ? $"--device {device}: no such CUDA device (libtorch sees {TorchRuntime.CudaDeviceCount})"
            : $"--device cuda: CUDA is not available (libtorch {TorchRuntime.LibTorchVersion} is a CPU build or sees no GPU; set LIBTORCH to a CUDA build)");
    }
}

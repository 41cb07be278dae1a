using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary>The memory guard and batch sizes from the command line: one-line refusals, --batch-size.</summary>
public sealed class MemoryLimitCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-mem-").FullName;
    private readonly string model;

    public MemoryLimitCommandTests() => model = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    [Theory]
    [InlineData("generate", "100000")]
    [InlineData("generate", "65536")]
    [InlineData("img2img", "100000")] // was "internal error (OverflowException)"
    public void AnImpossibleSizeIsRefusedInOneLineNamingTheSizeAndTheEstimate(string command, string size)
    {
        RgbImage.Filled(16, 16, new Rgb(1, 2, 3)).SavePng(Out("init.png"));
        string[] init = command == "img2img" ? ["--init", Out("init.png")] : [];
        var r = CliRunner.Run([command, "x", "--model", model, .. init, "-W", size, "-H", size, "--steps", "1", "--out", Out("huge.png")]);
        Assert.Equal(ErrorReporter.Failure, r.ExitCode);
        var line = Assert.Single(r.ErrLines);
        Assert.Contains($"{size}×{size}, 1 image: needs about ", line);
        Assert.Contains(" available (use ", line);
        Assert.DoesNotContain("internal error", line);
        Assert.False(File.Exists(Out("huge.png")));
    }

    [Fact]
    public void BatchSizeMustBePositive() =>
        CliRunner.Run("generate", "x", "--model", model, "--batch-size", "0", "--out", Out("b.png")).AssertUsageError("--batch-size must be at least 1");

    [Fact]
    public void ImagesInBatchesKeepTheirSeedsAndFiles()
    {
        var r = CliRunner.Run("generate", "a horse", "--model", model, "--steps", "1", "--seed", "7", "-n", "3", "--batch-size", "2", "--sampler", "euler_a", "--out", Out("h.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal([7L, 8, 9], new[] { 0, 1, 2 }.Select(i => GenerationParameters.FromPng(Out($"h-{i}.png"))!.Seed));
        Assert.True(File.Exists(Out("h-grid.png")));
    }

    [Fact]
    public void SampleInBatchesOfOneDrawsTheSameGridAsOneBatch()
    {
        var ddpm = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "latentunet", "ddpm_tiny");
        var one = CliRunner.Run("sample", "--model", ddpm, "--num", "3", "--steps", "2", "--seed", "5", "--batch-size", "1", "--out", Out("one.png"));
        var all = CliRunner.Run("sample", "--model", ddpm, "--num", "3", "--steps", "2", "--seed", "5", "--out", Out("all.png"));
        Assert.True(one.ExitCode == 0 && all.ExitCode == 0, one.Err + all.Err);
        Assert.Contains("sample: step 6/6", one.Err); // progress counts the steps of every batch
        var (a, b) = (RgbImage.Load(Out("one.png")), RgbImage.Load(Out("all.png")));
        // Equal up to float rounding across batch shapes: at most one 8-bit level apart.
        Assert.True(a.Pixels.Zip(b.Pixels).All(p => Math.Abs(p.First - p.Second) <= 1), "batches of one differ from one batch");
    }
}

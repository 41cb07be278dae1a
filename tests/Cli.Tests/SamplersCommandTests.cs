using System.Text.Json;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm samplers</c>, <c>ldm sampler-grid</c> and <c>--schedule</c>: everything from the sampler registry.</summary>
public sealed class SamplersCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-samplers-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    [Fact]
    public void SamplersJsonListsExactlyTheRegistryWithEachOnesScheduleTypes()
    {
        var r = CliRunner.Run("samplers", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        var rows = JsonDocument.Parse(r.Out).RootElement.EnumerateArray().ToList();
        Assert.Equal(Samplers.Names, rows.Select(e => e.GetProperty("name").GetString()));
        foreach (var (row, sampler) in rows.Zip(Samplers.All))
        {
            Assert.Equal(sampler.DisplayName, row.GetProperty("a1111_name").GetString());
            Assert.Equal(sampler.ClassName, row.GetProperty("diffusers_class").GetString());
            Assert.Equal(Samplers.SchedulesOf(sampler).Select(s => s.Name), row.GetProperty("schedules").EnumerateArray().Select(e => e.GetString()));
        }

        var table = CliRunner.Run("samplers");
        Assert.Equal(0, table.ExitCode);
        Assert.All(Samplers.Names, name => Assert.Contains(name, table.Out, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("euler_a", "karras", "sampler 'euler_a' does not support schedule type 'karras'")]
    [InlineData("ddim", "exponential", "sampler 'ddim' does not support schedule type 'exponential'")]
    [InlineData("euler", "simple-ish", "unknown schedule type 'simple-ish'")]
    public void AnUnsupportedScheduleIsAUsageErrorNamingTheOption(string sampler, string schedule, string message)
    {
        var r = CliRunner.Run("generate", "x", "--model", Out("no-such-model"), "--sampler", sampler, "--schedule", schedule, "--out", Out("x.png"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--schedule: {message}", r.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void GenerateWithAScheduleWritesItTheWayAutomatic1111Does()
    {
        var model = TinyStableDiffusionFolder.Assemble(Out("tiny"));
        var r = CliRunner.Run("generate", "x", "--model", model, "--steps", "2", "--seed", "1", "--sampler", "DPM++ 2M", "--schedule", "exponential", "--out", Out("e.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var parameters = GenerationParameters.FromPng(Out("e.png"))!;
        Assert.Equal(("DPM++ 2M", "Exponential"), (parameters.Sampler, parameters.ScheduleType));
        Assert.Equal("dpmpp_2m_exponential", Samplers.FromParameters(parameters)?.Name);

        // without --sampler the schedule applies to the model's own sampler (the tiny model's is PLMS: Automatic only)
        var own = CliRunner.Run("generate", "x", "--model", model, "--steps", "2", "--seed", "1", "--schedule", "karras", "--out", Out("p.png"));
        Assert.Equal(2, own.ExitCode);
        Assert.Contains("--schedule: sampler 'pndm' does not support schedule type 'karras' (it supports: automatic)", own.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(Out("p.png")));

        // an A1111 display name with the schedule folded in
        var karras = CliRunner.Run("generate", "x", "--model", model, "--steps", "2", "--seed", "1", "--sampler", "Euler Karras", "--out", Out("k.png"));
        Assert.True(karras.ExitCode == 0, karras.Err);
        Assert.Equal(("Euler", "Karras"), (GenerationParameters.FromPng(Out("k.png"))!.Sampler, GenerationParameters.FromPng(Out("k.png"))!.ScheduleType));
    }

    [Fact]
    public void SamplerGridWritesALabelledRowPerSamplerAndAColumnPerStepCount()
    {
        var model = TinyStableDiffusionFolder.Assemble(Out("tiny"));
        var r = CliRunner.Run("sampler-grid", "--prompt", "a red sneaker", "--model", model, "--samplers", "euler,ddim", "--steps", "1", "--out", Out("grid.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var grid = RgbImage.Load(Out("grid.png"));
        var single = CliRunner.Run("generate", "a red sneaker", "--model", model, "--steps", "1", "--seed", "1", "--out", Out("one.png"));
        Assert.True(single.ExitCode == 0, single.Err);
        var (w, h) = (RgbImage.Load(Out("one.png")).Width, RgbImage.Load(Out("one.png")).Height);
        // 2 px spacing around and between cells; the labels (3×5 font at scale h/32, 1 px between letters) left and above
        int scale = Math.Max(1, h / 32);
        int labelWidth = ("euler".Length * 4 - 1) * scale;
        Assert.Equal(labelWidth + 2 * 2 + 2 * scale + w + 2 * 2, grid.Width);
        Assert.Equal(5 * scale + 2 * 2 + 2 * scale + 2 * h + 3 * 2, grid.Height);

        var bad = CliRunner.Run("sampler-grid", "--prompt", "x", "--samplers", "euler,nope", "--out", Out("bad.png"));
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--samplers: unknown sampler 'nope'", bad.Err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("nan")]
    [InlineData("1,x")]
    [InlineData("100000")]
    public void GridStepCountsOutsideOneToAThousandAreAUsageError(string steps) =>
        CliRunner.Run("sampler-grid", "--prompt", "x", "--steps", steps)
            .AssertUsageError($"--steps must be comma-separated step counts from 1 to 1000, got '{steps}'");
}

using System.Diagnostics;
using LatentDiffusion.Cli.Fuzz;
using LatentDiffusion.Tests.Common;
using Xunit.Abstractions;

namespace LatentDiffusion.Cli.Tests;

/// <summary>
/// The seeded mutation suite (issue 12): a few hundred cases of damaged model files, images and option values, each
/// of which must end in a correct result or one clear error naming the file, field or option. `ldm fuzz` runs the long version.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper log) : IDisposable
{
    /// <summary>The suite's fixed seed: the same cases on every run.</summary>
    private const ulong Seed = 20250112;

    private readonly string work = Directory.CreateTempSubdirectory("ld-fuzz-tests-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    private FuzzSources Sources()
    {
        var embedded = FuzzSources.Embedded();
        var tiny = FuzzModel.Of(TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny")));
        return embedded with { Models = [tiny, .. embedded.Models] };
    }

    [Theory]
    [InlineData(FuzzFamily.SafeTensors, 80)]
    [InlineData(FuzzFamily.Image, 100)]
    [InlineData(FuzzFamily.Config, 30)]
    [InlineData(FuzzFamily.Scheduler, 30)]
    [InlineData(FuzzFamily.Tokenizer, 30)]
    [InlineData(FuzzFamily.Options, 40)]
    public void EveryCaseEndsInAResultOrOneClearError(FuzzFamily family, int cases)
    {
        var report = FuzzRunner.Run([family], cases, Seed, Sources(), FuzzScope.All);

        var counts = Assert.Single(report.Counts);
        log.WriteLine($"{family}: {counts.Cases} cases, {counts.Ok} ok, {counts.Refused} refused, {counts.Bugs} bugs in {report.Elapsed.TotalSeconds:F1} s");
        Assert.True(report.Bugs.Count == 0, string.Join("\n", report.Bugs.Select(b => $"{b.Reproduction}: {b.Mutation}: {b.Message}")));
        Assert.Equal(cases, counts.Cases);
        // Both outcomes occur: the mutations neither all miss (everything ok) nor all wreck the file before the reader's checks.
        Assert.True(counts.Ok > 0 && counts.Refused > 0, $"{counts.Ok} ok, {counts.Refused} refused");
    }

    [Fact]
    public void ACaseDependsOnlyOnFamilySeedAndIndex()
    {
        var sources = Sources();
        var first = FuzzRunner.RunCase(FuzzFamily.SafeTensors, 7, 3, sources, FuzzScope.All);
        FuzzRunner.RunCase(FuzzFamily.SafeTensors, 7, 4, sources, FuzzScope.All);
        var again = FuzzRunner.RunCase(FuzzFamily.SafeTensors, 7, 3, sources, FuzzScope.All);

        Assert.Equal((first.Mutation, first.Outcome), (again.Mutation, again.Outcome));
        Assert.NotEqual(first.Mutation, FuzzRunner.RunCase(FuzzFamily.SafeTensors, 8, 3, sources, FuzzScope.All).Mutation);
    }

    [Fact]
    public void AnUnnamedOrInternalErrorIsABug()
    {
        Assert.Equal(FuzzOutcome.Refused, FuzzVerdict.OfException(new InvalidDataException("unet/config.json: bad"), "config.json").Outcome);
        Assert.Equal(FuzzOutcome.Bug, FuzzVerdict.OfException(new InvalidDataException("bad"), "config.json").Outcome);
        Assert.Equal(FuzzOutcome.Bug, FuzzVerdict.OfException(new NullReferenceException("config.json"), "config.json").Outcome);
        Assert.Equal(FuzzOutcome.Bug, OptionsFuzzTarget.Judge(1, "", "error: a\nerror: --steps b\n", work, "--steps", null).Item1);
        Assert.Equal(FuzzOutcome.Refused, OptionsFuzzTarget.Judge(2, "", "error: --steps must be at least 1\n", work, "--steps", null).Item1);
    }

    [Fact]
    public void TheJsonMutatorNamesTheFieldItChanged()
    {
        var json = """{"beta_start": 0.00085, "beta_end": 0.012}"""u8.ToArray();
        var fields = Enumerable.Range(0, 40).Select(i => JsonMutator.Mutate(json, new FuzzRandom((ulong)i))).ToList();

        Assert.Contains(fields, m => m.Field == "beta_end" && m.Description.StartsWith("beta_end", StringComparison.Ordinal));
        Assert.All(fields, m => Assert.True(m.Field is null or "beta_start" or "beta_end", m.Description));
        Assert.All(fields, m => Assert.NotEqual(json, m.Data));
    }

    [Fact]
    public void TheCommandPrintsASummaryAndExitsZeroWithoutBugs()
    {
        var r = CliRunner.Run("fuzz", "--cases", "8", "--seed", "3", "--family", "image");

        Assert.True(r.ExitCode == 0, r.Err + r.Out);
        Assert.Matches(@"image\s+8\s+\d+\s+\d+\s+0", r.Out);
        Assert.Matches(@"all\s+8\s+", r.Out);

        var json = CliRunner.Run("fuzz", "--cases", "2", "--seed", "3", "--family", "safetensors", "--json");
        Assert.Equal(0, json.ExitCode);
        Assert.Contains("\"families\"", json.Out);

        CliRunner.Run("fuzz", "--family", "pictures").AssertUsageError("--family must be one of safetensors, config, scheduler, tokenizer, image, options, all, got 'pictures'");
    }

    // Found by the options family: a NUL failed only when the PNG was written, after generating, naming no option.
    [Theory]
    [InlineData("a\0b", "the prompt contains a NUL character")]
    [InlineData("--negative=\0", "--negative contains a NUL character")]
    public void ANulInThePromptIsRefusedBeforeGenerating(string argument, string expected)
    {
        string[] args = argument.StartsWith("--", StringComparison.Ordinal) ? ["generate", "x", argument] : ["generate", argument];
        CliRunner.Run([.. args, "--model", Path.Combine(work, "no-model"), "--out", Path.Combine(work, "nul.png")]).AssertUsageError(expected);
    }

    /// <summary>A sample through the real executable, as child processes: a native abort would kill only the child.</summary>
    [Theory]
    [InlineData("--steps", null, "generate", "x", "--steps", "nan")]
    [InlineData("--width", null, "generate", "x", "--width", "-1", "--steps", "1")]
    [InlineData("--init", "broken.png", "img2img", "x", "--init", "{broken.png}", "--steps", "1")]
    [InlineData("--model", "diffusion_pytorch_model.safetensors", "generate", "x", "--model", "{model}", "--steps", "1")]
    public async Task TheExecutableRefusesHostileInputInOneLine(string option, string? file, params string[] template)
    {
        var broken = Path.Combine(work, "broken.png");
        File.WriteAllBytes(broken, ImageSeeds.Images[0].Data[..40]);
        var model = FuzzModel.Of(TinyStableDiffusionFolder.Assemble(Path.Combine(work, "model"))).Path;
        var weights = Path.Combine(model, "unet", "diffusion_pytorch_model.safetensors");
        File.WriteAllBytes(weights, File.ReadAllBytes(weights)[..5000]);
        var output = Path.Combine(work, "out");
        Directory.CreateDirectory(output);
        var args = template.Select(a => a.Replace("{broken.png}", broken).Replace("{model}", model)).Concat(["--out", Path.Combine(output, "o.png")]);

        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = work };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ldm.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);

        var (outcome, message) = OptionsFuzzTarget.Judge(process.ExitCode, await stdout, await stderr, output, option, file);
        log.WriteLine($"exit {process.ExitCode}: {message}");
        Assert.True(outcome == FuzzOutcome.Refused, $"{outcome}: {message}");
    }
}

using System.Text.Json;
using LatentDiffusion.Cli.Benchmarks;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.Cli.Tests;

/// <summary>train, toy, sample, eval and the model benchmarks, on tiny fixtures.</summary>
public sealed class ModelCommandTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("ldm-cli-tests-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    private static string Repo(params string[] parts) => Path.Combine([SharedData.RepositoryRoot, .. parts]);


    private static string TinyDdpm => Repo("tests", "fixtures", "latentunet", "ddpm_tiny");

    [Fact]
    public void TheNewCommandsAreListed()
    {
        var r = CliRunner.Run("--help");

        foreach (var command in new[] { "train", "toy", "sample", "eval" }) Assert.Contains(command, r.Out);
        var bench = CliRunner.Run("bench", "--help");
        foreach (var command in new[] { "unet", "vae", "text" }) Assert.Contains(command, bench.Out);
    }

    [Theory]
    [InlineData(new[] { "sample", "--model", "m", "--num", "0" }, "--num must be at least 1")]
    [InlineData(new[] { "sample", "--model", "m", "--scheduler", "euler" }, "--scheduler must be one of ddpm, ddim")]
    [InlineData(new[] { "sample", "--num", "4" }, "--model")]
    [InlineData(new[] { "train", "ddpm", "--config", "no-such-recipe.json", "--out", "runs/x" }, "no-such-recipe.json: file not found")]
    [InlineData(new[] { "train", "judges", "everything" }, "everything")]
    [InlineData(new[] { "toy", "s-curve" }, "--out")]
    [InlineData(new[] { "eval", "ddpm", "--model", "m", "--samples", "1" }, "--samples must be at least 2")]
    [InlineData(new[] { "bench", "unet", "--dtype", "f16" }, "--dtype must be one of f32, bf16")]
    [InlineData(new[] { "bench", "text", "--config", "no-such-config.json" }, "no-such-config.json: file not found")]
    public void BadArgumentsGiveOneLineAndTheUsageExitCode(string[] args, string mentioned) =>
        CliRunner.Run(args).AssertUsageError(mentioned);

    [Fact]
    public void EvalDdpmOnAMissingModelFolderFailsWithOneLine()
    {
        var r = CliRunner.Run("eval", "ddpm", "--model", Path.Combine(temp, "no-model"), "--json");

        Assert.Equal(ErrorReporter.Failure, r.ExitCode);
        var line = Assert.Single(r.ErrLines);
        Assert.Contains("model_index.json: not found", line);
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void EvalPromptsOnAMissingModelFolderFailsWithOneLine()
    {
        var r = CliRunner.Run("eval", "prompts", "--model", Path.Combine(temp, "no-model"), "--samples-per-prompt", "1");

        Assert.Equal(ErrorReporter.Failure, r.ExitCode);
        Assert.Contains("model folder not found", Assert.Single(r.ErrLines));
    }

    [Fact]
    public void SampleWritesAGridThatRemembersItsParametersAndRepeatsForASeed()
    {
        string Sample(string name, string seed, params string[] extra)
        {
            var path = Path.Combine(temp, name);
            var r = CliRunner.Run(["sample", "--model", TinyDdpm, "--num", "4", "--steps", "3", "--seed", seed, "--out", path, .. extra]);
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Contains("sample: step 3/3", r.Err);
            Assert.Contains(path, r.Out);
            return path;
        }

        var live = LiveTensorCount.Settled();
        var first = Sample("a.png", "7");
        var again = Sample("b.png", "7");
        var other = Sample("c.png", "8");
        var ddim = Sample("d.png", "7", "--scheduler", "ddim");
        Assert.Equal(live, LiveTensorCount.Settled());

        Assert.Equal(File.ReadAllBytes(first), File.ReadAllBytes(again));
        Assert.NotEqual(File.ReadAllBytes(first), File.ReadAllBytes(other));
        Assert.NotEqual(File.ReadAllBytes(first), File.ReadAllBytes(ddim));

        var grid = RgbImage.Load(first);
        Assert.Equal((32, 32), (grid.Width, grid.Height)); // 2 × 2 images of 16 × 16
        var parameters = GenerationParameters.FromPng(first);
        Assert.NotNull(parameters);
        Assert.Equal(7, parameters.Seed);
        Assert.Equal(3, parameters.Steps);
        Assert.Equal("DDPM", parameters.Sampler);
        Assert.Equal(16, parameters.Width);
        Assert.Equal("DDIM", GenerationParameters.FromPng(ddim)!.Sampler);
    }

    [Fact]
    public void EvalDdpmJudgesAGreyModelsSamples()
    {
        // ddpm_tiny made grey 32×32 (what the Fashion-MNIST classifier judges), with random weights.
        var model = Path.Combine(temp, "grey-ddpm");
        var config = ConfigJson.Load<LatentDiffusion.LatentUNet.UNet2DModelConfig>(Path.Combine(TinyDdpm, "unet", "config.json"))
            with { InChannels = 1, OutChannels = 1, SampleSize = 32 };
        using (var unet = new LatentDiffusion.LatentUNet.UNet2DModel(config)) unet.Save(Path.Combine(model, "unet"));
        File.Copy(Path.Combine(TinyDdpm, "model_index.json"), Path.Combine(model, "model_index.json"));
        Directory.CreateDirectory(Path.Combine(model, "scheduler"));
        File.Copy(Path.Combine(TinyDdpm, "scheduler", "scheduler_config.json"), Path.Combine(model, "scheduler", "scheduler_config.json"));

        var r = CliRunner.Run("eval", "ddpm", "--model", model, "--samples", "4", "--steps", "2", "--batch-size", "2",
            "--judge", Repo("models", "judges", "fashion-classifier"), "--json");

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("eval ddpm: 4/4 images", r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        Assert.True(double.IsFinite(root.GetProperty("fid").GetDouble()));
        Assert.Equal(4, root.GetProperty("samples").GetInt32());
        var histogram = root.GetProperty("class_histogram").EnumerateObject().ToList();
        Assert.Equal(10, histogram.Count);
        Assert.Equal(4, histogram.Sum(p => p.Value.GetInt32()));
    }

    [Fact]
    public void EvalPromptsJudgesEveryStandardPrompt()
    {
        var model = TinyStableDiffusionFolder.Assemble(Path.Combine(temp, "sd-tiny"));

        var r = CliRunner.Run("eval", "prompts", "--model", model, "--samples-per-prompt", "1", "--steps", "1", "--size", "32",
            "--judge", Repo("models", "judges", "fashion-colours-judge"), "--json");

        Assert.True(r.ExitCode == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        Assert.Equal(80, root.GetProperty("samples").GetInt32()); // 10 classes × 8 colours, one sample each
        Assert.Equal(80, root.GetProperty("prompts").GetArrayLength());
        foreach (var key in new[] { "class_adherence", "colour_adherence", "held_out_adherence", "seen_adherence" })
            Assert.InRange(root.GetProperty(key).GetDouble(), 0, 1);
        Assert.True(double.IsFinite(root.GetProperty("fid").GetDouble()));
    }

    [Fact]
    public void EvalPromptsOfTheNewColourWithTheShippedLoraJudgesTenPromptsByTint()
    {
        string[] Args(params string[] extra) => ["eval", "prompts", "--model", Repo("models", "fashion-colours"), "--colour", "magenta",
            "--samples-per-prompt", "1", "--steps", "8", "--guidance", "4", "--json", .. extra];
        var r = CliRunner.Run(Args("--lora", Repo("models", "fashion-magenta-lora", "lora-fashion-magenta.safetensors")));

        Assert.True(r.ExitCode == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var prompts = doc.RootElement.GetProperty("prompts").EnumerateArray().ToList();
        Assert.Equal(10, prompts.Count);
        Assert.Equal("a magenta t-shirt", prompts[0].GetProperty("prompt").GetString());
        Assert.True(doc.RootElement.GetProperty("colour_adherence").GetDouble() >= 0.9, r.Out);

        var missing = CliRunner.Run(Args("--lora", Path.Combine(temp, "none.safetensors")));
        Assert.Equal(ErrorReporter.Usage, missing.ExitCode);
        Assert.Contains("none.safetensors: file not found", Assert.Single(missing.ErrLines));
        var teal = CliRunner.Run("eval", "prompts", "--model", Repo("models", "fashion-colours"), "--colour", "teal");
        Assert.NotEqual(0, teal.ExitCode);
        Assert.Contains("teal", teal.Err);
    }

    [Fact]
    public void BenchTextJsonGivesTheExpectedKeys()
    {
        var live = LiveTensorCount.Settled();
        var r = CliRunner.Run("bench", "text", "--config", Repo("tests", "fixtures", "cli", "tiny-text-encoder.json"), "--repeat", "1", "--dtype", "bf16", "--json");

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(live, LiveTensorCount.Settled());
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        foreach (var key in new[] { "seconds", "gflop", "gflops", "peak_rss_mb", "f32_seconds", "output_max_abs" })
            Assert.True(root.GetProperty(key).GetDouble() > 0, $"{key} should be positive");
        var parity = root.GetProperty("parity_max_abs_diff").GetDouble();
        Assert.InRange(parity, 0, 0.1 * root.GetProperty("output_max_abs").GetDouble()); // bf16 keeps ~3 significant digits
        Assert.Equal("bf16", root.GetProperty("dtype").GetString());
        Assert.Equal("cpu", root.GetProperty("device").GetString());
        Assert.Equal("CLIPTextModel", root.GetProperty("model").GetString());
        Assert.Equal(1, root.GetProperty("repeat").GetInt32());
        Assert.False(root.TryGetProperty("cuda_memory_used_mb", out _));
    }

    [Fact]
    public void BenchUnetRunsAnSdxlUNetWithItsPooledEmbeddingAndTimeIds()
    {
        var live = LiveTensorCount.Settled();
        var r = CliRunner.Run("bench", "unet", "--config", Repo("tests", "fixtures", "sdxl", "sdxl_tiny", "unet", "config.json"),
            "--size", "64", "--batch", "2", "--repeat", "1", "--dtype", "bf16", "--json");

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(live, LiveTensorCount.Settled());
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        Assert.Equal("latents [2, 4, 8, 8] (64×64 px), text [2, 77, 96], pooled [2, 32], time ids [2, 6], t = 500", root.GetProperty("input").GetString());
        Assert.True(root.GetProperty("output_max_abs").GetDouble() > 0);
        Assert.InRange(root.GetProperty("parity_max_abs_diff").GetDouble(), 0, 0.1 * root.GetProperty("output_max_abs").GetDouble());
    }

    [Theory]
    [InlineData("VmHWM:\t    2184 kB", 2184L * 1024)]
    [InlineData("VmHWM:\t12345678 kB", 12345678L * 1024)] // ≥ 10^7 KiB: no space after the tab (found by the SDXL U-Net bench)
    [InlineData("VmRSS:\t    2184 kB", null)]
    public void PeakRssReadsTheKernelsVmHwmLineAtAnySize(string line, long? bytes) => Assert.Equal(bytes, ModelBenchmark.VmHwmBytes(line));

    [Fact]
    public void BenchVaeTilingDecodesAnImageLargerThanOneTile()
    {
        var live = LiveTensorCount.Settled();
        // The tiny VAE's tiles are 64×64 px (8×8 latents); 12×12 latents → 96×96 px needs four blended tiles.
        var r = CliRunner.Run("bench", "vae", "--config", Repo("tests", "fixtures", "autoencoder", "sd_tiny_vae", "config.json"),
            "--latent-size", "12", "--batch", "2", "--tiling", "--slicing", "--repeat", "1", "--json");

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(live, LiveTensorCount.Settled());
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        Assert.Equal("latents [2, 4, 12, 12] → 96×96 image, tiled (64×64 px tiles), sliced", root.GetProperty("input").GetString());
        Assert.True(root.GetProperty("seconds").GetDouble() > 0);
        Assert.True(root.GetProperty("output_max_abs").GetDouble() > 0);
    }

    [Fact]
    public void BenchTextTableShowsSecondsAndGflops()
    {
        var r = CliRunner.Run("bench", "text", "--config", Repo("tests", "fixtures", "cli", "tiny-text-encoder.json"), "--repeat", "1");

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("GFLOP/s", r.Out);
        Assert.Contains("peak RSS", r.Out);
    }

    [Fact]
    public void ToySCurveWithATinyRecipeWritesItsFiles()
    {
        var run = Path.Combine(temp, "toy");
        var r = CliRunner.Run("toy", "s-curve", "--config", Repo("tests", "fixtures", "cli", "toy-tiny.json"), "--out", run);

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("trained 20 steps", r.Out);
        Assert.Contains("samples lie", r.Out);
        Assert.Contains("toy s-curve: step 1/20 · loss ", r.Err); // the progress display, as plain lines on standard error
        Assert.Contains("toy s-curve: step 20/20 · loss ", r.Err);
        Assert.Contains("toy s-curve: step 10 · checkpoint step-000010", r.Err);
        foreach (var file in new[] { "forward.png", "reverse.png", "samples.png", "metrics.jsonl", "model/model.safetensors" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} should exist");
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoints", "step-000020")));

        var resumed = CliRunner.Run("toy", "s-curve", "--config", Repo("tests", "fixtures", "cli", "toy-tiny.json"), "--out", run, "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Err);
    }

    [Fact]
    public void ResumingAFolderWithoutACheckpointFailsInsteadOfStartingOver()
    {
        var run = Path.Combine(temp, "toy-nothing-to-resume");
        var r = CliRunner.Run("toy", "s-curve", "--config", Repo("tests", "fixtures", "cli", "toy-tiny.json"), "--out", run, "--resume");

        Assert.Equal(ErrorReporter.Failure, r.ExitCode);
        Assert.Contains($"{run} has no checkpoint to resume from", r.ErrLines[^1]);
        Assert.DoesNotContain("trained", r.Out);
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoints")));
        Assert.False(File.Exists(Path.Combine(run, "metrics.jsonl")));
    }

    [Fact]
    public void CancellingTrainingWritesACheckpointExitsWith130AndResumes()
    {
        // The token Program.cs cancels on Ctrl+C, cancelled here when the display reports the first checkpoint.
        var run = Path.Combine(temp, "toy-cancelled");
        var recipe = Repo("tests", "fixtures", "cli", "toy-tiny.json");
        using var cancellation = new CancellationTokenSource();
        using var output = new StringWriter();
        using var error = new CancelOnLine("checkpoint step-000010", cancellation);

        var code = CliApp.Run(["toy", "s-curve", "--config", recipe, "--out", run], output, error, cancellation.Token);

        Assert.Equal(ErrorReporter.Cancelled, code);
        Assert.Contains("stopping after this step and writing a checkpoint", error.ToString());
        Assert.Contains("stopped at step 10 ", output.ToString());
        Assert.DoesNotContain("samples lie", output.ToString());
        Assert.False(File.Exists(Path.Combine(run, "model", "model.safetensors")));

        var resumed = CliRunner.Run("toy", "s-curve", "--config", recipe, "--out", run, "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Err);
        Assert.Contains("trained 20 steps (resumed from step 10)", resumed.Out);
    }

    /// <summary>Standard error that cancels <paramref name="source"/> once a line contains <paramref name="text"/>.</summary>
    private sealed class CancelOnLine(string text, CancellationTokenSource source) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.Contains(text, StringComparison.Ordinal) == true) source.Cancel();
        }
    }

    [Fact]
    public void TrainDdpmWithATinyRecipeGivesAModelThatSampleReads()
    {
        var run = Path.Combine(temp, "ddpm");
        var r = CliRunner.Run("train", "ddpm", "--config", Repo("tests", "fixtures", "cli", "ddpm-tiny.json"), "--out", run);

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("trained 4 steps", r.Out);
        Assert.True(File.Exists(Path.Combine(run, "model", "model_index.json")));

        var grid = Path.Combine(temp, "ddpm-grid.png");
        var sampled = CliRunner.Run("sample", "--model", Path.Combine(run, "model"), "--num", "2", "--steps", "2", "--out", grid);
        Assert.True(sampled.ExitCode == 0, sampled.Err);
        Assert.Equal((64, 32), (RgbImage.Load(grid).Width, RgbImage.Load(grid).Height)); // two 32 × 32 images in a row
    }

    [Fact]
    public void ABadRecipeIsOneLineNotAnInternalError()
    {
        var recipe = Path.Combine(temp, "bad.json");
        File.WriteAllText(recipe, """{ "num_steps": 1 }""");

        var r = CliRunner.Run("toy", "s-curve", "--config", recipe, "--out", Path.Combine(temp, "bad"));

        Assert.Equal(ErrorReporter.Failure, r.ExitCode);
        var line = Assert.Single(r.ErrLines);
        Assert.Contains("num_steps", line);
        Assert.DoesNotContain("internal error", line);
    }

    [Fact]
    public void FlopCounterMatchesThePublishedSd15UNetCost()
    {
        var config = ConfigJson.Load<LatentDiffusion.LatentUNet.UNet2DConditionModelConfig>(Repo("configs", "models", "sd15-unet.json"));

        var convAndLinear = FlopCounter.WithoutAttentionMatmuls(() => FlopCounter.UNet2DCondition(config, 1, 64, 64, 77)) / 2e9;
        var all = FlopCounter.UNet2DCondition(config, 1, 64, 64, 77) / 2e9;

        Assert.InRange(convAndLinear, 339 * 0.99, 339 * 1.01); // BK-SDM (Kim et al. 2023), Table 1: 339 G MACs at 512×512 (conv + linear modules)
        Assert.InRange(all - convAndLinear, 55, 70);            // Q·Kᵀ and softmax·V, mostly the 4096-token self-attention at 64×64
        Assert.Equal(2 * FlopCounter.UNet2DCondition(config, 1, 32, 32, 77), FlopCounter.UNet2DCondition(config, 2, 32, 32, 77), 6);
    }
}

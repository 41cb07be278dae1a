using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm generate</c> with LoRAs (--lora, --lora-dir and prompt tags) and textual-inversion embeddings on the tiny golden model.</summary>
public sealed class AdapterCommandTests : IDisposable
{
    private static readonly string Fixtures = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "pipeline", "lora");
    private static readonly string Kohya = Path.Combine(Fixtures, "sd_tiny_lora_kohya.safetensors");
    private static readonly string TinyToken = Path.Combine(Fixtures, "tinytoken.safetensors");
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-lora-").FullName;
    private readonly string model;

    public AdapterCommandTests() => model = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    private CliRunner.Result Generate(string prompt, string output, params string[] more) =>
        CliRunner.Run(["generate", prompt, "--model", model, "--steps", "2", "--seed", "3", "--out", Out(output), .. more]);

    [Fact]
    public void ALoraGivenByFileOrByPromptTagMakesTheSameImageAndThePngRecordsItAsAutomatic1111()
    {
        var plain = Generate("an astronaut", "plain.png");
        var byFile = Generate("an astronaut", "file.png", "--lora", Kohya + ":0.8");
        var byTag = Generate("an astronaut <lora:sd_tiny_lora_kohya:0.8>", "tag.png", "--lora-dir", Fixtures);
        foreach (var r in new[] { plain, byFile, byTag }) Assert.True(r.ExitCode == 0, r.Err);
        Assert.DoesNotContain("WARNING", byFile.Err);
        Assert.Equal(RgbImage.Load(Out("file.png")).Pixels, RgbImage.Load(Out("tag.png")).Pixels);
        Assert.NotEqual(RgbImage.Load(Out("plain.png")).Pixels, RgbImage.Load(Out("file.png")).Pixels);

        var parameters = GenerationParameters.FromPng(Out("file.png"))!;
        Assert.Equal("an astronaut <lora:sd_tiny_lora_kohya:0.8>", parameters.Prompt);
        Assert.Equal("sd_tiny_lora_kohya: b7b73971d6be", parameters.Extra.Single(e => e.Key == "Lora hashes").Value);
        var text = CliRunner.Run("info", "--image", Out("tag.png")).Out;
        Assert.Contains("Lora hashes: \"sd_tiny_lora_kohya: b7b73971d6be\"", text);
    }

    [Fact]
    public void AMissingOrPickleLoraIsOneLineAndAnUnknownTagAWarning()
    {
        var missing = Generate("x", "m.png", "--lora", Out("absent.safetensors:0.5"));
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("--lora " + Out("absent.safetensors") + ": file not found", Assert.Single(missing.ErrLines));

        File.WriteAllBytes(Out("style.pt"), [0x80, 0x02]);
        var pickle = Generate("x", "p.png", "--lora", Out("style.pt"));
        Assert.NotEqual(0, pickle.ExitCode);
        Assert.Contains("pickle format (.pt) are not loaded", Assert.Single(pickle.ErrLines));

        var unknown = Generate("x <lora:nosuch:1>", "u.png", "--lora-dir", Fixtures);
        Assert.True(unknown.ExitCode == 0, unknown.Err);
        Assert.Contains("LoRA 'nosuch' not found", unknown.Err);
    }

    [Fact]
    public void AnEmbeddingIsAWordOfThePromptAndAnUnknownOneAWarning()
    {
        var plain = Generate("a tinytoken cat", "plain.png");
        var named = Generate("a tinytoken cat", "named.png", "--embedding", "tinytoken=" + TinyToken);
        var folder = Directory.CreateDirectory(Out("embeddings")).FullName;
        File.Copy(TinyToken, Path.Combine(folder, "tinytoken.safetensors"));
        var fromDir = Generate("a tinytoken cat embedding:nosuch", "dir.png", "--embeddings-dir", folder);
        foreach (var r in new[] { plain, named, fromDir }) Assert.True(r.ExitCode == 0, r.Err);
        Assert.NotEqual(RgbImage.Load(Out("plain.png")).Pixels, RgbImage.Load(Out("named.png")).Pixels);
        Assert.Contains("WARNING: embedding 'nosuch' in the prompt is not loaded", fromDir.Err);
        // A1111's "TI hashes": the embeddings the prompt uses, with the first 12 hex digits of the file's SHA-256
        Assert.Equal("tinytoken: 6be62b069f3d", GenerationParameters.FromPng(Out("named.png"))!.Extra.Single(e => e.Key == "TI hashes").Value);
        Assert.Equal("tinytoken: 6be62b069f3d", GenerationParameters.FromPng(Out("dir.png"))!.Extra.Single(e => e.Key == "TI hashes").Value);
        Assert.DoesNotContain(GenerationParameters.FromPng(Out("plain.png"))!.Extra, e => e.Key == "TI hashes");

        var wrong = Generate("x", "w.png", "--embedding", "a b=" + TinyToken);
        Assert.Contains("NAME must be one word", Assert.Single(wrong.ErrLines));
    }
}

/// <summary><c>ldm train lora</c>: a recipe on the tiny model trains, writes the kohya file, and <c>generate --lora</c> loads it.</summary>
public sealed class TrainLoraCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-train-lora-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    /// <summary>The tiny model, a folder of one <paramref name="width"/> × <paramref name="height"/> image and a one-step recipe.</summary>
    private (string Model, string Recipe) TinyRun(int width, int height)
    {
        var model = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));
        var subject = Directory.CreateDirectory(Path.Combine(work, "data", "3_thing")).FullName;
        RgbImage.Filled(width, height, new Rgb(250, 0, 250)).SavePng(Path.Combine(subject, "x.png"));
        File.WriteAllText(Path.Combine(subject, "x.txt"), "a magenta thing");
        var recipe = Path.Combine(work, "tiny-lora.json");
        File.WriteAllText(recipe, """
            { "model": "tiny", "data": { "folder": "data", "resolution": 64 }, "network": { "rank": 2 },
              "sampling": { "steps": 1, "prompts": ["a magenta thing"] },
              "training": { "max_steps": 1, "batch_size": 1, "ema": null, "checkpoint_every": 0, "sample_every": 0, "warmup_steps": 0 } }
            """);
        return (model, recipe);
    }

    [Fact]
    public void TrainsOneStepAndTheFileGeneratesAndAMissingFolderIsOneLine()
    {
        var (model, recipe) = TinyRun(64, 64);
        var run = CliRunner.Run("train", "lora", "--config", recipe, "--out", Path.Combine(work, "run"));
        Assert.True(run.ExitCode == 0, run.Err);
        var lora = Path.Combine(work, "run", "model", "tiny-lora.safetensors");
        Assert.True(File.Exists(lora));
        var generated = CliRunner.Run("generate", "a magenta thing", "--model", model, "--steps", "1", "--lora", lora, "--out", Path.Combine(work, "g.png"));
        Assert.True(generated.ExitCode == 0, generated.Err);
        Assert.Contains("<lora:tiny-lora:1>", GenerationParameters.FromPng(Path.Combine(work, "g.png"))!.Prompt);

        Directory.Delete(Path.Combine(work, "data"), recursive: true);
        var missing = CliRunner.Run("train", "lora", "--config", recipe, "--out", Path.Combine(work, "run2"));
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("image folder not found", Assert.Single(missing.ErrLines));
    }

    [Fact]
    public void KohyasBucketOptionsOverrideTheRecipe()
    {
        var (_, recipe) = TinyRun(80, 48);
        var bad = CliRunner.Run("train", "lora", "--config", recipe, "--out", Path.Combine(work, "bad"), "--enable-bucket", "--bucket_reso_steps", "12");
        Assert.Equal(1, bad.ExitCode);
        Assert.Equal($"error: {recipe}: 'data.bucket_reso_steps' must be a positive multiple of 8 (the VAE's factor; got 12)", Assert.Single(bad.ErrLines));

        var run = CliRunner.Run("train", "lora", "--config", recipe, "--out", Path.Combine(work, "run"),
            "--enable_bucket", "--min-bucket-reso", "32", "--max-bucket-reso", "128", "--bucket-reso-steps", "16");
        Assert.True(run.ExitCode == 0, run.Err);
        var used = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(work, "run", "recipe.json")))!["data"]!;
        Assert.True(used["enable_bucket"]!.GetValue<bool>());
        Assert.Equal(16, used["bucket_reso_steps"]!.GetValue<int>());
        Assert.Equal(32, used["min_bucket_reso"]!.GetValue<int>());

        // resumed with other buckets: refused in one line naming the setting and both values
        var resumed = CliRunner.Run("train", "lora", "--config", recipe, "--out", Path.Combine(work, "run"), "--resume",
            "--enable_bucket", "--min-bucket-reso", "32", "--max-bucket-reso", "128", "--bucket-reso-steps", "32");
        Assert.Equal(1, resumed.ExitCode);
        Assert.Equal($"error: cannot resume from {Path.Combine(work, "run", "checkpoints", "step-000001")}: it was made with bucket_reso_steps 16, " +
            "the recipe now gives 32; restore the recipe or start a new output folder", Assert.Single(resumed.ErrLines));

        // steps the tiny model's U-Net cannot halve evenly (VAE factor 8 × 2^1)
        var uneven = CliRunner.Run("train", "lora", "--config", recipe, "--out", Path.Combine(work, "uneven"),
            "--enable_bucket", "--min-bucket-reso", "32", "--max-bucket-reso", "128", "--bucket-reso-steps", "8");
        Assert.Equal(1, uneven.ExitCode);
        Assert.Equal($"error: {recipe}: 'data.bucket_reso_steps' must be a multiple of 16 for this model (the VAE's factor 8 × 2^1, the U-Net's downsamplings; got 8)",
            Assert.Single(uneven.ErrLines));
    }
}

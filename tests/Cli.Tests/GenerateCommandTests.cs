using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm generate</c>, <c>img2img</c>, <c>info --image</c>, <c>tokenize</c>, <c>vae roundtrip</c> on the tiny golden model.</summary>
public sealed class GenerateCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-gen-").FullName;
    private readonly string model;

    public GenerateCommandTests() => model = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    [Fact]
    public void GenerateWritesAPngThatRemembersItsParametersAndTheSameSeedGivesTheSameImage()
    {
        var first = CliRunner.Run("generate", "an astronaut", "--model", model, "--steps", "2", "--seed", "42", "--negative", "blurry", "--out", Out("a.png"));
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(Path.GetFullPath(Out("a.png")), first.Out.Trim());
        var again = CliRunner.Run("generate", "an astronaut", "--model", model, "--steps", "2", "--seed", "42", "--negative", "blurry", "--out", Out("b.png"));
        Assert.Equal(0, again.ExitCode);
        Assert.Equal(RgbImage.Load(Out("a.png")).Pixels, RgbImage.Load(Out("b.png")).Pixels);

        var info = CliRunner.Run("info", "--image", Out("a.png"));
        Assert.Equal(0, info.ExitCode);
        Assert.Equal("an astronaut\nNegative prompt: blurry\nSteps: 2, Sampler: PLMS, Schedule type: Automatic, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: tiny", info.Out.Trim().Replace("\r", ""));
    }

    [Fact]
    public void WithoutModelItUsesTheEmbeddedModelAndAnUnknownWordIsNoError()
    {
        var r = CliRunner.Run("generate", "a zebra-striped kimono in red", "--seed", "5", "--out", Out("k.png"));

        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(Path.GetFullPath(Out("k.png")), r.Out.Trim());
        var image = RgbImage.Load(Out("k.png"));
        Assert.Equal((32, 32), (image.Width, image.Height));
        Assert.True(image.Pixels.Max() > 128, "the embedded model draws a bright item on a dark background");
        var parameters = GenerationParameters.FromPng(Out("k.png"))!;
        Assert.Equal("fashion-colours", parameters.Model);
        Assert.Equal(5, parameters.Seed);
    }

    [Fact]
    public void TheEmbeddedModelTakesSizesInMultiplesOfItsVaeFactorFour()
    {
        var r = CliRunner.Run("generate", "a red sneaker", "--width", "36", "--height", "28", "--steps", "1", "--seed", "1", "--out", Out("four.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var image = RgbImage.Load(Out("four.png"));
        Assert.Equal((36, 28), (image.Width, image.Height));

        var bad = CliRunner.Run("generate", "x", "--width", "34", "--steps", "1", "--out", Out("bad34.png"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("width must be a positive multiple of 4 (got 34)", Assert.Single(bad.ErrLines));
    }

    [Fact]
    public void SamplerHelpListsExactlyTheRegistrysSamplers()
    {
        var help = CliRunner.Run("generate", "--help");
        Assert.Equal(0, help.ExitCode);
        var line = help.Out.Split('\n').Single(l => l.Contains("--sampler <sampler>", StringComparison.Ordinal));
        var listed = line[(line.IndexOf('>') + 1)..line.IndexOf(" (default", StringComparison.Ordinal)].Split(',', StringSplitOptions.TrimEntries);
        Assert.Equal(Samplers.Names, listed);

        // every listed name is accepted; an unknown one fails before the model loads, naming the list
        var bad = CliRunner.Run("generate", "x", "--model", Out("no-such-model"), "--sampler", "dpm_adaptive", "--out", Out("dpm_adaptive.png"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains($"unknown sampler 'dpm_adaptive' (known: {string.Join(", ", Samplers.Names)})", Assert.Single(bad.ErrLines));
    }

    [Fact]
    public void AKarrasSamplerIsWrittenTheWayAutomatic1111From19WritesIt()
    {
        var r = CliRunner.Run("generate", "x", "--model", model, "--steps", "2", "--seed", "1", "--sampler", "DPM++ 2M Karras", "--out", Out("karras.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var parameters = GenerationParameters.FromPng(Out("karras.png"))!;
        Assert.Equal(("DPM++ 2M", "Karras"), (parameters.Sampler, parameters.ScheduleType));
        Assert.Equal("dpmpp_2m_karras", Samplers.FromParameters(parameters)?.Name);
    }

    [Fact]
    public void SeveralImagesGetOneFileEachPlusAGridAndSeedsCountUp()
    {
        var r = CliRunner.Run("generate", "a horse", "--model", model, "--steps", "1", "--seed", "7", "-n", "2", "--sampler", "euler_a", "--out", Out("h.png"));
        Assert.Equal(0, r.ExitCode);
        Assert.True(File.Exists(Out("h-0.png")) && File.Exists(Out("h-1.png")) && File.Exists(Out("h-grid.png")));
        Assert.Equal(8, GenerationParameters.FromPng(Out("h-1.png"))!.Seed);
        Assert.Equal("Euler a", GenerationParameters.FromPng(Out("h-0.png"))!.Sampler);
        Assert.Equal(128, RgbImage.Load(Out("h-grid.png")).Width);
    }

    [Fact]
    public void PreviewKeepsAPngOfTheFirstImageWhileDenoising()
    {
        // Euler's last preview is the denoised estimate at σ = 0, i.e. the final image.
        var r = CliRunner.Run("generate", "x", "--model", model, "--steps", "3", "--sampler", "euler", "--seed", "1",
            "--preview", Out("live.png"), "--preview-every", "2", "--out", Out("p.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("generating: step 3/3 (t=", r.Err); // the progress display, as plain lines on standard error
        var preview = RgbImage.Load(Out("live.png"));
        var final = RgbImage.Load(Out("p.png"));
        Assert.Equal((final.Width, final.Height), (preview.Width, preview.Height));
        Assert.True(preview.Pixels.Zip(final.Pixels, (a, b) => Math.Abs(a - b)).Max() <= 1);
        Assert.Empty(Directory.GetFiles(work, "*.tmp*"));

        var bad = CliRunner.Run("generate", "x", "--model", model, "--preview", Out("live.jpg"), "--out", Out("q.png"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--preview must name a .png file", bad.Err);
        var zero = CliRunner.Run("generate", "x", "--model", model, "--preview", Out("live.png"), "--preview-every", "0", "--out", Out("q.png"));
        Assert.NotEqual(0, zero.ExitCode);
        Assert.Contains("--preview-every must be at least 1, got 0", zero.Err);
    }

    [Fact]
    public void LatentsCanBeSavedAndGivenBack()
    {
        var saved = CliRunner.Run("generate", "x", "--model", model, "--steps", "1", "--seed", "3", "--save-latents", Out("z.safetensors"), "--out", Out("z.png"));
        Assert.Equal(0, saved.ExitCode);
        var given = CliRunner.Run("generate", "x", "--model", model, "--steps", "1", "--latents", Out("z.safetensors"), "--out", Out("z2.png"));
        Assert.Equal(0, given.ExitCode);
        Assert.True(File.Exists(Out("z2.png")));
    }

    [Fact]
    public void ImageToImageUsesTheInitImageSizeAndPreviews()
    {
        RgbImage.Filled(72, 40, new Rgb(10, 200, 30)).SavePng(Out("init.png"));
        var r = CliRunner.Run("img2img", "grass", "--model", model, "--init", Out("init.png"), "--strength", "0.5", "--steps", "4", "--sampler", "ddim",
            "--preview", Out("live-i.png"), "--out", Out("i.png"));
        Assert.Equal(0, r.ExitCode);
        var image = RgbImage.Load(Out("i.png"));
        Assert.Equal((72, 40), (image.Width, image.Height));
        var preview = RgbImage.Load(Out("live-i.png")); // img2img gets every generate option, previews included
        Assert.Equal((72, 40), (preview.Width, preview.Height));
        Assert.Equal(0.5, GenerationParameters.FromPng(Out("i.png"))!.Strength);
    }

    [Theory]
    [InlineData("--width", "60", "width must be a positive multiple of 8 (got 60)")]
    [InlineData("--steps", "0", "steps must be at least 1 (got 0)")]
    [InlineData("--sampler", "bogus", "unknown sampler 'bogus'")]
    [InlineData("--guidance", "-1", "--guidance must be a finite number in [0, 100], got -1", ErrorReporter.Usage)]
    [InlineData("--dtype", "int8", "--dtype must be f32, bf16, f16 or auto, got 'int8'", ErrorReporter.Usage)]
    [InlineData("--dtype", "i64", "--dtype must be f32, bf16, f16 or auto, got 'i64'", ErrorReporter.Usage)]
    public void BadOptionsGiveOneClearLineAndNoFile(string option, string value, string expected, int exitCode = ErrorReporter.Failure)
    {
        var r = CliRunner.Run("generate", "x", "--model", model, option, value, "--out", Out("bad.png"));
        Assert.Equal(exitCode, r.ExitCode);
        var line = Assert.Single(r.ErrLines);
        Assert.Contains(expected, line);
        Assert.False(File.Exists(Out("bad.png")));
        Assert.Empty(Directory.GetFiles(work, "*.tmp", SearchOption.AllDirectories));
    }

    [Theory]
    [InlineData("generate")]
    [InlineData("img2img")]
    public void ClipSkipOutsideTheTextEncodersLayersGetsOneMessageWhateverTheValue(string command)
    {
        RgbImage.Filled(64, 64, new Rgb(10, 20, 30)).SavePng(Out("init.png"));
        var layers = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "text_encoder", "config.json")))
            .RootElement.GetProperty("num_hidden_layers").GetInt32();
        string[] init = command == "img2img" ? ["--init", Out("init.png"), "--strength", "1"] : [];
        foreach (var value in new[] { 0, -1, layers + 1, 1000 })
        {
            var r = CliRunner.Run([command, "x", "--model", model, .. init, "--steps", "1", "--clip-skip", value.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", Out("skip.png")]);

            Assert.Equal(ErrorReporter.Usage, r.ExitCode);
            Assert.Equal($"error: --clip-skip must be between 1 and {layers} (the text encoder's layer count), got {value}", Assert.Single(r.ErrLines));
            Assert.False(File.Exists(Out("skip.png")));
        }
        var last = CliRunner.Run([command, "x", "--model", model, .. init, "--steps", "1", "--clip-skip", layers.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", Out("skip.png")]);
        Assert.True(last.ExitCode == 0, last.Err);
    }

    [Fact]
    public void UnreadableInitImageAndMissingModelAreNamed()
    {
        File.WriteAllText(Out("not-an-image.png"), "hello");
        var image = CliRunner.Run("img2img", "x", "--model", model, "--init", Out("not-an-image.png"));
        Assert.Equal(1, image.ExitCode);
        Assert.Contains("not-an-image.png", Assert.Single(image.ErrLines));

        var missing = CliRunner.Run("generate", "x", "--model", Out("nowhere"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("model folder not found", Assert.Single(missing.ErrLines));

        Directory.Delete(Path.Combine(model, "unet"), recursive: true);
        var broken = CliRunner.Run("generate", "x", "--model", model);
        Assert.Contains("'unet/' is missing", Assert.Single(broken.ErrLines));
    }

    [Theory]
    [InlineData("unet/config.json", "block_out_channels", "null")]
    [InlineData("unet/config.json", "attention_head_dim", "0")]
    [InlineData("scheduler/scheduler_config.json", "beta_start", "0.5")]
    public void ABadConfigValueIsOneErrorLineNamingTheFileAndField(string file, string field, string value)
    {
        var path = Path.Combine(model, file);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(path, json.ToJsonString());
        var r = CliRunner.Run("generate", "x", "--model", model, "--out", Out("bad.png"));
        Assert.Equal(1, r.ExitCode);
        var line = Assert.Single(r.ErrLines);
        Assert.Contains(Path.GetFileName(file), line);
        Assert.Contains($"field '{field}'", line);
        Assert.DoesNotContain("internal error", line);
        Assert.False(File.Exists(Out("bad.png")));
    }

    [Fact]
    public void TokenizePrintsThePaddedIds()
    {
        var r = CliRunner.Run("tokenize", "--model", model, "a photo of a cat", "--tokens");
        Assert.Equal(0, r.ExitCode);
        var lines = r.Out.Trim().Split('\n');
        var ids = lines[0].Split(' ').Select(int.Parse).ToArray();
        Assert.Equal(77, ids.Length);
        Assert.Equal(932, ids[0]); // bos of the tiny vocabulary
        Assert.Contains("a</w>", lines[1]);
    }

    [Fact]
    public void VaeRoundtripWritesTheImageAndPrintsPsnr()
    {
        RgbImage.Filled(64, 48, new Rgb(120, 120, 120)).SavePng(Out("grey.png"));
        var r = CliRunner.Run("vae", "roundtrip", "--model", model, "--image", Out("grey.png"), "--out", Out("rt.png"));
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"PSNR \d+\.\d\d dB \(64x48\)", r.Out);
        Assert.Equal((64, 48), (RgbImage.Load(Out("rt.png")).Width, RgbImage.Load(Out("rt.png")).Height));
    }
}

public sealed class ConvertCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-convert-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    [Fact]
    public void ConvertWritesADiffusersFolderThatGenerates()
    {
        var fixtures = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures");
        var files = new Dictionary<string, string>
        {
            ["unet"] = Path.Combine(fixtures, "latentunet/sd_tiny/unet/diffusion_pytorch_model.safetensors"),
            ["vae"] = Path.Combine(fixtures, "autoencoder/sd_tiny_vae/diffusion_pytorch_model.safetensors"),
            ["text_encoder"] = Path.Combine(fixtures, "textencoder/clip/sd_tiny_text_encoder/model.safetensors"),
        };
        var layout = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(fixtures, "pipeline/checkpoints/ldm_layout.json"))).RootElement;
        var original = new Dictionary<string, Torch.Tensor>();
        foreach (var pair in layout.GetProperty("pairs").EnumerateArray())
        {
            var diffusers = pair.GetProperty("diffusers").GetString()!;
            var slash = diffusers.IndexOf('/');
            using var weights = Torch.SafeTensors.SafeTensorsFile.Open(files[diffusers[..slash]]);
            var t = weights.Load(diffusers[(slash + 1)..]);
            original[pair.GetProperty("original").GetString()!] = pair.GetProperty("transform").GetString() == "SqueezeConv1x1" ? t.Reshape([.. t.Shape, 1, 1]) : t;
        }
        var checkpoint = Path.Combine(work, "tiny.safetensors");
        Torch.SafeTensors.SafeTensorsFile.Save(checkpoint, original);
        foreach (var t in original.Values) t.Dispose();

        // The tiny model's configs and tokenizer stand in for a family's (as diffusers' config= does).
        var configSource = Path.Combine(work, "configs");
        TinyStableDiffusionFolder.Assemble(configSource);
        var output = Path.Combine(work, "converted");
        var r = CliRunner.Run("convert", checkpoint, output, "--config", configSource, "--family", "sd1");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.True(File.Exists(Path.Combine(output, "unet", "diffusion_pytorch_model.safetensors")));
        var gen = CliRunner.Run("generate", "a cat", "--model", output, "--steps", "1", "--out", Path.Combine(work, "c.png"));
        Assert.Equal(0, gen.ExitCode);

        var exists = CliRunner.Run("convert", checkpoint, output, "--config", configSource, "--family", "sd1");
        Assert.Contains("already exists", Assert.Single(exists.ErrLines));
        var pickle = Path.Combine(work, "m.ckpt");
        File.WriteAllBytes(pickle, [0x80, 0x02]);
        Assert.Contains("pickle", Assert.Single(CliRunner.Run("convert", pickle, Path.Combine(work, "p")).ErrLines));
    }
}

public sealed class TrainRecipeCommandTests
{
    [Theory]
    [InlineData("vae")]
    [InlineData("ldm")]
    public void MissingRecipeIsOneClearLine(string model)
    {
        var never = Path.Combine(Path.GetTempPath(), $"ld-never-{Guid.NewGuid():N}");
        var recipe = Path.Combine(never, "recipe.json");
        var r = CliRunner.Run("train", model, "--config", recipe, "--out", never);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(recipe, Assert.Single(r.ErrLines));
        Assert.False(Directory.Exists(never));
    }
}

/// <summary><c>ldm generate … --controlnet DIR|FILE --control canny:PHOTO[:SCALE]</c> on the tiny model and ControlNet.</summary>
public sealed class ControlNetCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-cn-").FullName;
    private readonly string model;
    private static readonly string ControlNet = Path.Combine(SharedData.RepositoryRoot, "tests/fixtures/latentunet/controlnet_tiny");
    private static readonly string Photo = Path.Combine(SharedData.RepositoryRoot, "tests/fixtures/pipeline/canny/coffee.png");

    public ControlNetCommandTests() => model = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    private CliRunner.Result Generate(string output, params string[] more) =>
        CliRunner.Run(["generate", "a cup", "--model", model, "--steps", "2", "--seed", "3", "--out", Out(output), .. more]);

    [Fact]
    public void CannyAndReadyMadeControlImagesSteerTheImageAndAreRecordedAsA1111Does()
    {
        var plain = Generate("plain.png");
        Assert.True(plain.ExitCode == 0, plain.Err);
        var canny = Generate("canny.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}:0.8", "--canny-low", "50", "--canny-high", "120");
        Assert.True(canny.ExitCode == 0, canny.Err);
        Assert.NotEqual(RgbImage.Load(Out("plain.png")).Pixels, RgbImage.Load(Out("canny.png")).Pixels);
        var parameters = GenerationParameters.FromPng(Out("canny.png"))!;
        // A1111's default resize mode: the 120 × 80 photo's centre 80 × 80, resized to 64 × 64
        Assert.Equal("Module: canny, Model: controlnet_tiny, Weight: 0.8, Resize Mode: Crop and Resize, Threshold A: 50, Threshold B: 120, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced",
            parameters.Extra.Single(f => f.Key == "ControlNet 0").Value);

        // the same edges given ready-made (found at the output size, as the pipeline does) give the same image
        var photo = RgbImage.Load(Photo);
        var edges = Pipeline.Preprocessors.CannyDetector.Detect(photo.Crop(20, 0, 80, 80).Resize(64, 64), 50, 120);
        edges.SavePng(Out("edges.png"));
        var ready = Generate("ready.png", "--controlnet", ControlNet, "--control", $"image:{Out("edges.png")}:0.8");
        Assert.True(ready.ExitCode == 0, ready.Err);
        Assert.Equal(RgbImage.Load(Out("canny.png")).Pixels, RgbImage.Load(Out("ready.png")).Pixels);

        // --control-resize just stretches the whole photo (diffusers): the edges of the stretched photo
        var just = Generate("just.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}:0.8", "--canny-low", "50", "--canny-high", "120", "--control-resize", "just");
        Assert.True(just.ExitCode == 0, just.Err);
        Assert.Contains("Resize Mode: Just Resize,", GenerationParameters.FromPng(Out("just.png"))!.Extra.Single(f => f.Key == "ControlNet 0").Value);
        Pipeline.Preprocessors.CannyDetector.Detect(photo.Resize(64, 64), 50, 120).SavePng(Out("stretched.png"));
        var stretched = Generate("stretched-ready.png", "--controlnet", ControlNet, "--control", $"image:{Out("stretched.png")}:0.8");
        Assert.True(stretched.ExitCode == 0, stretched.Err);
        Assert.Equal(RgbImage.Load(Out("just.png")).Pixels, RgbImage.Load(Out("stretched-ready.png")).Pixels);
        Assert.NotEqual(RgbImage.Load(Out("canny.png")).Pixels, RgbImage.Load(Out("just.png")).Pixels);

        // fill: the photo fitted inside (64 × 43), its edges found there, the rest filled with their border's median
        var fill = Generate("fill.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}:0.8", "--canny-low", "50", "--canny-high", "120", "--control-resize", "fill");
        Assert.True(fill.ExitCode == 0, fill.Err);
        Assert.Contains("Resize Mode: Resize and Fill,", GenerationParameters.FromPng(Out("fill.png"))!.Extra.Single(f => f.Key == "ControlNet 0").Value);
        Pipeline.Preprocessors.CannyDetector.Detect(photo.Resize(64, 43), 50, 120).FillTo(64, 64).SavePng(Out("letterboxed.png"));
        var letterboxed = Generate("letterboxed-ready.png", "--controlnet", ControlNet, "--control", $"image:{Out("letterboxed.png")}:0.8");
        Assert.True(letterboxed.ExitCode == 0, letterboxed.Err);
        Assert.Equal(RgbImage.Load(Out("fill.png")).Pixels, RgbImage.Load(Out("letterboxed-ready.png")).Pixels);

        // two ControlNets with per-unit windows, guess mode
        var two = Generate("two.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}", "--controlnet", ControlNet, "--control", $"image:{Out("edges.png")}:0.5",
            "--control-start", "0", "--control-start", "0.5", "--control-end", "1", "--guess-mode", "--control-resize", "fill", "--control-resize", "just");
        Assert.True(two.ExitCode == 0, two.Err);
        var both = GenerationParameters.FromPng(Out("two.png"))!.Extra;
        Assert.Contains("Guidance Start: 0.5", both.Single(f => f.Key == "ControlNet 1").Value);
        Assert.Contains("Resize Mode: Resize and Fill,", both.Single(f => f.Key == "ControlNet 0").Value);
        Assert.Contains("Resize Mode: Just Resize,", both.Single(f => f.Key == "ControlNet 1").Value);
        Assert.Contains("Control Mode: ControlNet is more important", both.Single(f => f.Key == "ControlNet 0").Value);
    }

    [Fact]
    public void BadControlNetOptionsAreOneLine()
    {
        Generate("x.png", "--controlnet", ControlNet).AssertUsageError("--controlnet is given 1 time(s) and --control 0");
        Generate("x.png", "--controlnet", ControlNet, "--control", $"depth:{Photo}").AssertUsageError("expected canny:PHOTO[:SCALE] or image:MAP[:SCALE]");
        Generate("x.png", "--guess-mode").AssertUsageError("need a --controlnet");
        Generate("x.png", "--control-resize", "crop").AssertUsageError("need a --controlnet");
        Generate("x.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}", "--control-resize", "stretch").AssertUsageError("stretch");
        Generate("x.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}", "--control-resize", "just", "--control-resize", "fill")
            .AssertUsageError("--control-resize is given 2 times for 1 ControlNets");
        Generate("x.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}", "--control-end", "1.5").AssertUsageError("--control-end must be a fraction of the steps in [0, 1], got 1.5");
        Generate("x.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}", "--control-start", "0", "--control-start", "0.1")
            .AssertUsageError("--control-start is given 2 times for 1 ControlNets");
        Generate("x.png", "--controlnet", ControlNet, "--control", $"canny:{Photo}:12").AssertUsageError("the scale must be in [0, 10]");
        var missing = Generate("x.png", "--controlnet", ControlNet, "--control", $"canny:{Out("none.png")}");
        Assert.Equal(1, missing.ExitCode);
        Assert.Single(missing.ErrLines);
        // a ControlNet for another base model
        var other = Path.Combine(work, "other");
        Directory.CreateDirectory(other);
        File.WriteAllText(Path.Combine(other, "config.json"), File.ReadAllText(Path.Combine(ControlNet, "config.json")).Replace("\"cross_attention_dim\": 32", "\"cross_attention_dim\": 16"));
        var config = LatentUNet.ControlNetModelConfig.Load(Path.Combine(other, "config.json"));
        using (var net = new LatentUNet.ControlNetModel(config)) net.Save(other);
        var mismatch = Generate("x.png", "--controlnet", other, "--control", $"canny:{Photo}");
        Assert.Equal(1, mismatch.ExitCode);
        Assert.Contains("other: its cross_attention_dim is 16 but the model's is 32: it was made for another base model", Assert.Single(mismatch.ErrLines));
        Assert.False(File.Exists(Out("x.png")));
    }
}

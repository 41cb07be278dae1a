using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm generate|img2img --model ONNX-FOLDER</c>: the ONNX engine from the command line, and its refusals.</summary>
public sealed class OnnxCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-onnx-").FullName;
    private static readonly string Onnx = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "onnx", "sd_tiny_onnx");

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    [Fact]
    public void GenerateAndImageToImageRunAnOnnxFolderWithParametersAndPreviews()
    {
        var r = CliRunner.Run("generate", "an astronaut", "--model", Onnx, "--steps", "2", "--seed", "42", "-W", "64", "-H", "64", "--sampler", "euler_a",
            "--preview", Out("live.png"), "--out", Out("a.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var again = CliRunner.Run("generate", "an astronaut", "--model", Onnx, "--engine", "onnx", "--steps", "2", "--seed", "42", "-W", "64", "-H", "64", "--sampler", "euler_a", "--out", Out("b.png"));
        Assert.True(again.ExitCode == 0, again.Err);
        Assert.Equal(RgbImage.Load(Out("a.png")).Pixels, RgbImage.Load(Out("b.png")).Pixels);
        Assert.True(File.Exists(Out("live.png")));
        var info = CliRunner.Run("info", "--image", Out("a.png"));
        Assert.Equal("an astronaut\nSteps: 2, Sampler: Euler a, Schedule type: Uniform, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: sd_tiny_onnx", info.Out.Trim().Replace("\r", ""));

        RgbImage.Filled(64, 48, new Rgb(10, 200, 30)).SavePng(Out("init.png"));
        var i = CliRunner.Run("img2img", "grass", "--model", Onnx, "--init", Out("init.png"), "--strength", "0.5", "--steps", "2", "--out", Out("i.png"));
        Assert.True(i.ExitCode == 0, i.Err);
        Assert.Equal((64, 48), (RgbImage.Load(Out("i.png")).Width, RgbImage.Load(Out("i.png")).Height));
    }

    [Fact]
    public void SdxlExportsGenerateWithAnOnnxRefinerLikeLibtorchAndRunImageToImage()
    {
        using var refiner = new TinyXlFolder();
        refiner.MakeRefiner();
        foreach (var (model, target) in new[] { (TinyXlFolder.Source, Out("xl")), (refiner.Path, Out("xl_refiner")) })
        {
            var export = CliRunner.Run("export", "onnx", model, target);
            Assert.True(export.ExitCode == 0, export.Err);
        }
        string[] request = ["an astronaut", "--refiner-switch", "0.7", "--steps", "4", "--guidance", "5", "--seed", "3", "-W", "64", "-H", "64",
            "--prompt-2", "a horse", "--clip-skip", "2", "--aesthetic-score", "7"];
        var onnx = CliRunner.Run(["generate", .. request, "--model", Out("xl"), "--refiner", Out("xl_refiner"), "--out", Out("onnx.png")]);
        Assert.True(onnx.ExitCode == 0, onnx.Err);
        var torch = CliRunner.Run(["generate", .. request, "--model", TinyXlFolder.Source, "--refiner", refiner.Path, "--out", Out("torch.png")]);
        Assert.True(torch.ExitCode == 0, torch.Err);
        var parameters = GenerationParameters.FromPng(Out("onnx.png"))!;
        Assert.Equal("xl", parameters.Model);
        Assert.Contains(parameters.Extra, kv => kv.Key == "Refiner" && kv.Value == "xl_refiner");
        // the engines agree to about 1e-5 in the latents: the 8-bit pixels at most one level apart
        var (a, b) = (RgbImage.Load(Out("onnx.png")).Pixels, RgbImage.Load(Out("torch.png")).Pixels);
        Assert.InRange(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)), 0, 1);

        RgbImage.Filled(64, 48, new Rgb(10, 200, 30)).SavePng(Out("init.png"));
        var i = CliRunner.Run("img2img", "grass", "--model", Out("xl"), "--init", Out("init.png"), "--strength", "0.5", "--steps", "2", "--out", Out("i.png"));
        Assert.True(i.ExitCode == 0, i.Err);
        Assert.Equal((64, 48), (RgbImage.Load(Out("i.png")).Width, RgbImage.Load(Out("i.png")).Height));
    }

    [Fact]
    public void SamplerGridRunsAnOnnxFolder()
    {
        var r = CliRunner.Run("sampler-grid", "--model", Onnx, "--prompt", "a horse", "--samplers", "euler,ddim", "--steps", "1", "--out", Out("grid.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.True(File.Exists(Out("grid.png")));
    }

    [Fact]
    public void CudaWithTheCpuBuildOfOnnxRuntimeNamesWhatIsMissing()
    {
        var r = CliRunner.Run("generate", "x", "--model", Onnx, "--device", "cuda", "--out", Out("c.png"));
        var line = r.AssertUsageError("-p:OnnxGpu=true (Microsoft.ML.OnnxRuntime.Gpu.Linux 1.32.0)");
        Assert.Contains("CUDA 13", line);
        Assert.False(File.Exists(Out("c.png")));
    }

    [Theory]
    [InlineData("--engine", "torch", "is an ONNX model: --engine torch runs diffusers folders and checkpoints")]
    [InlineData("--engine", "tensorrt", "--engine must be auto (ONNX Runtime for an ONNX folder, else libtorch), torch or onnx, not 'tensorrt'")]
    [InlineData("--vae-tiling", null, "--attention-slicing and --vae-tiling are libtorch options")]
    [InlineData("--clip-skip", "2", "--clip-skip must be between 1 and 1")]
    public void WhatTheOnnxEngineCannotDoIsOneLine(string option, string? value, string expected)
    {
        string[] extra = value is null ? [option] : [option, value];
        var r = CliRunner.Run(["generate", "x", "--model", Onnx, "--steps", "1", .. extra, "--out", Out("x.png")]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(expected, Assert.Single(r.ErrLines));
        Assert.False(File.Exists(Out("x.png")));
    }

    [Fact]
    public void EngineOnnxOnADiffusersFolderSaysHowToGetAnOnnxModel()
    {
        var tiny = TinyStableDiffusionFolder.Assemble(Out("tiny"));
        var r = CliRunner.Run("generate", "x", "--model", tiny, "--engine", "onnx", "--out", Out("x.png"));
        Assert.Contains("no ONNX model folder (no unet/model.onnx)", Assert.Single(r.ErrLines));
    }
}

/// <summary><c>ldm bench unet --engine onnx</c>: ONNX Runtime on the benchmark's own weights, exported first.</summary>
[Collection(LiveTensorCount.Name)]
public sealed class OnnxBenchTests
{
    [Fact]
    public void BenchUnetWithTheOnnxEngineRunsTheSameWeightsAndInputs()
    {
        var config = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "latentunet", "sd_tiny", "unet", "config.json");
        var live = LiveTensorCount.Settled();
        var torch = CliRunner.Run("bench", "unet", "--config", config, "--size", "64", "--repeat", "1", "--json");
        var onnx = CliRunner.Run("bench", "unet", "--config", config, "--size", "64", "--repeat", "1", "--json", "--engine", "onnx");
        Assert.True(torch.ExitCode == 0, torch.Err);
        Assert.True(onnx.ExitCode == 0, onnx.Err);
        Assert.Equal(live, LiveTensorCount.Settled());
        using var t = System.Text.Json.JsonDocument.Parse(torch.Out);
        using var o = System.Text.Json.JsonDocument.Parse(onnx.Out);
        Assert.Equal("libtorch", t.RootElement.GetProperty("engine").GetString());
        Assert.StartsWith("onnxruntime 1.32", o.RootElement.GetProperty("engine").GetString());
        Assert.True(o.RootElement.GetProperty("seconds").GetDouble() > 0);
        // the largest output value of the same weights on the same inputs: the engines agree
        Assert.Equal(t.RootElement.GetProperty("output_max_abs").GetDouble(), o.RootElement.GetProperty("output_max_abs").GetDouble(), 1e-4);
        Assert.Equal(t.RootElement.GetProperty("parameters").GetInt64(), o.RootElement.GetProperty("parameters").GetInt64());
    }
}

/// <summary><c>ldm bench txt2img --engine torch|onnx</c>: a whole generation on the same random weights.</summary>
public sealed class TextToImageBenchTests
{
    [Fact]
    public void BothEnginesRunTheSameRandomPipeline()
    {
        string[] common = [.. Common(), "--size", "64", "--steps", "2", "--json"];
        var torch = CliRunner.Run([.. common, "--engine", "torch"]);
        var onnx = CliRunner.Run([.. common, "--engine", "onnx"]);
        Assert.True(torch.ExitCode == 0, torch.Err);
        Assert.True(onnx.ExitCode == 0, onnx.Err);
        using var t = System.Text.Json.JsonDocument.Parse(torch.Out);
        using var o = System.Text.Json.JsonDocument.Parse(onnx.Out);
        Assert.Equal("libtorch", t.RootElement.GetProperty("engine").GetString());
        Assert.StartsWith("onnxruntime", o.RootElement.GetProperty("engine").GetString());
        Assert.True(o.RootElement.GetProperty("seconds").GetDouble() > 0);
        Assert.Equal(t.RootElement.GetProperty("latents_max_abs").GetDouble(), o.RootElement.GetProperty("latents_max_abs").GetDouble(), 3e-4);
    }

    [Fact]
    public void SavedModelLoadsBackToTheSameGenerationAndWritesItsOutput()
    {
        var work = Directory.CreateTempSubdirectory("ld-cli-bench-txt2img-").FullName;
        try
        {
            // The embedded model's tokenizer (it pads to 16): the benchmark pads to the text encoder's context instead (77).
            string[] common = [.. Common(tokenizer: false), "--size", "64", "--steps", "2", "--json"];
            var folder = Path.Combine(work, "model");
            var save = CliRunner.Run([.. common, "--save-model", folder]);
            Assert.True(save.ExitCode == 0, save.Err);
            Assert.True(File.Exists(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors")));
            using (var request = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "bench_request.json"))))
            {
                Assert.Equal(77, request.RootElement.GetProperty("input_ids").GetArrayLength());
                Assert.Equal(77, request.RootElement.GetProperty("negative_input_ids").GetArrayLength());
                Assert.Equal("a red sneaker on a white background", request.RootElement.GetProperty("prompt").GetString());
            }

            var random = CliRunner.Run([.. common, "--save-output", Path.Combine(work, "random.safetensors")]);
            var loaded = CliRunner.Run([.. common, "--model", folder, "--save-output", Path.Combine(work, "loaded.safetensors")]);
            var bf16 = CliRunner.Run([.. common, "--model", folder, "--dtype", "bf16", "--vae-tiling"]);
            Assert.True(random.ExitCode == 0, random.Err);
            Assert.True(loaded.ExitCode == 0, loaded.Err);
            Assert.True(bf16.ExitCode == 0, bf16.Err);
            float[] Read(string file, string name)
            {
                var tensors = Torch.SafeTensors.SafeTensorsFile.LoadFile(Path.Combine(work, file));
                try
                {
                    return tensors[name].ToArray<float>();
                }
                finally
                {
                    foreach (var t in tensors.Values) t.Dispose();
                }
            }
            Assert.Equal(4 * 8 * 8, Read("random.safetensors", "latents").Length);
            Assert.Equal(3 * 64 * 64, Read("random.safetensors", "image").Length);
            // The saved folder holds the random weights exactly: loading it gives the same generation, bit for bit.
            Assert.Equal(Read("random.safetensors", "latents"), Read("loaded.safetensors", "latents"));
            Assert.Equal(Read("random.safetensors", "image"), Read("loaded.safetensors", "image"));
            using var r = System.Text.Json.JsonDocument.Parse(bf16.Out);
            Assert.Equal("bf16", r.RootElement.GetProperty("dtype").GetString());
            Assert.True(r.RootElement.GetProperty("vae_tiling").GetBoolean());
            Assert.True(r.RootElement.GetProperty("generation_peak_rss_mb").GetDouble() > 0);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static string[] Common(bool tokenizer = true)
    {
        string Fixture(params string[] parts) => Path.Combine([SharedData.RepositoryRoot, "tests", "fixtures", .. parts]);
        return
        [
            "bench", "txt2img",
            "--unet-config", Fixture("latentunet", "sd_tiny", "unet", "config.json"),
            "--vae-config", Fixture("autoencoder", "sd_tiny_vae", "config.json"),
            "--text-config", Fixture("textencoder", "clip", "sd_tiny_text_encoder", "config.json"),
            "--scheduler-config", Fixture("pipeline", "sd_tiny", "scheduler", "scheduler_config.json"),
            .. tokenizer ? new[] { "--tokenizer", Fixture("textencoder", "tokenizer_tiny") } : [],
        ];
    }
}

/// <summary><c>ldm export onnx</c>: a diffusers folder written as an ONNX folder that <c>ldm generate</c> runs.</summary>
public sealed class ExportCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-export-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    [Fact]
    public void ExportThenGenerateGivesTheLibtorchImage()
    {
        var tiny = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));
        var onnx = Path.Combine(work, "tiny-onnx");
        var r = CliRunner.Run("export", "onnx", tiny, onnx);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(Path.GetFullPath(onnx), r.Out.Trim());
        Assert.Equal(["exporting text_encoder", "exporting unet", "exporting vae_encoder", "exporting vae_decoder"], r.ErrLines);

        var torch = CliRunner.Run("generate", "a horse", "--model", tiny, "--steps", "2", "--seed", "9", "--sampler", "euler", "--out", Path.Combine(work, "t.png"));
        var viaOnnx = CliRunner.Run("generate", "a horse", "--model", onnx, "--steps", "2", "--seed", "9", "--sampler", "euler", "--out", Path.Combine(work, "o.png"));
        Assert.True(torch.ExitCode == 0 && viaOnnx.ExitCode == 0, torch.Err + viaOnnx.Err);
        var a = RgbImage.Load(Path.Combine(work, "t.png")).Pixels;
        var b = RgbImage.Load(Path.Combine(work, "o.png")).Pixels;
        Assert.Equal(a.Length, b.Length);
        Assert.True(a.Zip(b).All(p => Math.Abs(p.First - p.Second) <= 1), "the two engines' 8-bit images differ by more than one level");

        var again = CliRunner.Run("export", "onnx", tiny, onnx);
        Assert.Contains("already exists", Assert.Single(again.ErrLines));
        var opset = CliRunner.Run("export", "onnx", tiny, Path.Combine(work, "x"), "--opset", "13");
        opset.AssertUsageError("--opset must be 17 or 18, got 13");
        var fromOnnx = CliRunner.Run("export", "onnx", onnx, Path.Combine(work, "y"));
        Assert.Contains("is an ONNX model", Assert.Single(fromOnnx.ErrLines));
    }

    [Fact]
    public void ExportWithALoraMergedGivesTheLibtorchImageWithThatLora()
    {
        var tiny = TinyStableDiffusionFolder.Assemble(Path.Combine(work, "tiny"));
        var lora = Path.Combine(SharedData.RepositoryRoot, "tests", "fixtures", "pipeline", "lora", "sd_tiny_lora_kohya.safetensors");
        var onnx = Path.Combine(work, "tiny-lora-onnx");
        var r = CliRunner.Run("export", "onnx", tiny, onnx, "--lora", lora + ":0.8");
        Assert.True(r.ExitCode == 0, r.Err);

        string[] common = ["--steps", "2", "--seed", "9", "--sampler", "euler"];
        var torch = CliRunner.Run(["generate", "a horse", "--model", tiny, "--lora", lora + ":0.8", .. common, "--out", Path.Combine(work, "t.png")]);
        var plain = CliRunner.Run(["generate", "a horse", "--model", tiny, .. common, "--out", Path.Combine(work, "p.png")]);
        var viaOnnx = CliRunner.Run(["generate", "a horse", "--model", onnx, .. common, "--out", Path.Combine(work, "o.png")]);
        Assert.True(torch.ExitCode == 0 && plain.ExitCode == 0 && viaOnnx.ExitCode == 0, torch.Err + plain.Err + viaOnnx.Err);
        var withLora = RgbImage.Load(Path.Combine(work, "t.png")).Pixels;
        var without = RgbImage.Load(Path.Combine(work, "p.png")).Pixels;
        var exported = RgbImage.Load(Path.Combine(work, "o.png")).Pixels;
        Assert.True(withLora.Zip(exported).All(p => Math.Abs(p.First - p.Second) <= 1), "the export with the LoRA merged differs from libtorch with the LoRA");
        Assert.False(without.SequenceEqual(exported), "the LoRA changed nothing in the export");

        var missing = CliRunner.Run("export", "onnx", tiny, Path.Combine(work, "z"), "--lora", Path.Combine(work, "none.safetensors"));
        missing.AssertUsageError("file not found");
    }
}

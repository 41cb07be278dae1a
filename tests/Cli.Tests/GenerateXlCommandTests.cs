using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>ldm generate</c> with an SDXL model: second prompts, micro-conditioning and <c>--refiner</c> on the tiny SDXL folder.</summary>
public sealed class GenerateXlCommandTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ld-cli-xl-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    private string Out(string name) => Path.Combine(work, name);

    [Fact]
    public void BaseHandsItsLatentsToTheRefinerAndThePngNamesBoth()
    {
        using var refiner = new TinyXlFolder();
        refiner.MakeRefiner();
        var r = CliRunner.Run("generate", "an astronaut", "--model", TinyXlFolder.Source, "--refiner", refiner.Path, "--refiner-switch", "0.7",
            "--steps", "4", "--guidance", "5", "--seed", "3", "--width", "64", "--height", "64", "--prompt-2", "a horse", "--aesthetic-score", "7",
            "--original-size", "128x96", "--out", Out("xl.png"));
        Assert.True(r.ExitCode == 0, r.Err);
        var parameters = GenerationParameters.FromPng(Out("xl.png"))!;
        Assert.Equal("sdxl_tiny", parameters.Model);
        Assert.Contains(parameters.Extra, kv => kv.Key == "Refiner" && kv.Value == Path.GetFileName(refiner.Path));
        Assert.Contains(parameters.Extra, kv => kv.Key == "Refiner switch at" && kv.Value == "0.7");
        Assert.Equal((64, 64), (RgbImage.Load(Out("xl.png")).Width, RgbImage.Load(Out("xl.png")).Height));
    }

    [Fact]
    public void RefinerThatIsNotARefinerIsOneLine()
    {
        // the SDXL base itself as --refiner: it has no aesthetic-score conditioning
        var r = CliRunner.Run("generate", "x", "--model", TinyXlFolder.Source, "--refiner", TinyXlFolder.Source, "--steps", "2", "--out", Out("no.png"));
        Assert.Equal(2, r.ExitCode); // a usage error
        Assert.Contains("--refiner: " + TinyXlFolder.Source + " is not an SDXL refiner", Assert.Single(r.ErrLines));
        Assert.False(File.Exists(Out("no.png")));

        var sd = TinyStableDiffusionFolder.Assemble(Out("sd_tiny"));
        var notXl = CliRunner.Run("generate", "x", "--model", sd, "--refiner", TinyXlFolder.Source, "--steps", "2", "--out", Out("no.png"));
        Assert.Equal(2, notXl.ExitCode);
        Assert.Contains("is not an SDXL model", Assert.Single(notXl.ErrLines));

        var badSize = CliRunner.Run("generate", "x", "--model", TinyXlFolder.Source, "--original-size", "big", "--steps", "2", "--out", Out("no.png"));
        Assert.Equal(2, badSize.ExitCode);
        Assert.Contains("--original-size must be WIDTHxHEIGHT", Assert.Single(badSize.ErrLines));
    }

    [Fact]
    public void ConvertWritesAnSdxlFolderFromAStabilitySingleFile()
    {
        var file = Out("tiny_xl.safetensors");
        StabilityCheckpoint.Write(TinyXlFolder.Source, file, refiner: false);
        var r = CliRunner.Run("convert", file, Out("converted"), "--family", "sdxl", "--config", TinyXlFolder.Source);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("StableDiffusionXLPipeline", File.ReadAllText(Out("converted/model_index.json")));
        Assert.True(File.Exists(Out("converted/text_encoder_2/model.safetensors")));
        Assert.True(File.Exists(Out("converted/tokenizer_2/vocab.json")));
        var generated = CliRunner.Run("generate", "x", "--model", Out("converted"), "--steps", "2", "--width", "64", "--height", "64", "--out", Out("c.png"));
        Assert.True(generated.ExitCode == 0, generated.Err);
    }
}

using System.Text.Json.Nodes;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.Config;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>A model folder whose configs do not fit together is refused at load, naming the file and the field.</summary>
public sealed class ModelFolderConfigTests : IDisposable
{
    private readonly string model = TinyStableDiffusionFolder.Assemble(Directory.CreateTempSubdirectory("ld-config-folder-").FullName);

    public void Dispose() => Directory.Delete(model, recursive: true);

    private void Edit(string file, string field, JsonNode? value)
    {
        var path = Path.Combine(model, file);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json[field] = value;
        File.WriteAllText(path, json.ToJsonString());
    }

    [Fact]
    public void ATextEncoderVocabularySmallerThanTheTokenizersIsRefusedNamingBoth()
    {
        Edit("text_encoder/config.json", "vocab_size", 10);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionPipeline.FromPretrained(model).Dispose());
        Assert.Contains(Path.Combine("text_encoder", "config.json") + ": field 'vocab_size' (10)", e.Message);
        Assert.Contains("tokenizer", e.Message);
    }

    [Fact]
    public void ABetaStartAboveBetaEndIsRefusedNamingTheSchedulerConfig()
    {
        Edit("scheduler/scheduler_config.json", "beta_start", 0.5);
        var e = Assert.Throws<SchedulerConfigException>(() => StableDiffusionPipeline.FromPretrained(model).Dispose());
        Assert.Equal("beta_start", e.Field);
        Assert.Contains("scheduler_config.json", e.Message);
    }

    [Theory]
    [InlineData("block_out_channels", null)]
    [InlineData("attention_head_dim", 0)]
    [InlineData("layers_per_block", -1)]
    [InlineData("in_channels", -4)]
    public void ABadUNetValueIsRefusedNamingTheFileAndField(string field, int? value)
    {
        Edit("unet/config.json", field, value);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionPipeline.FromPretrained(model).Dispose());
        Assert.Contains(Path.Combine("unet", "config.json") + $": field '{field}", e.Message);
    }

    [Fact]
    public void AMidBlockScaleFactorNearZeroIsRefusedBeforeItMakesInfinities()
    {
        // Found by `ldm fuzz --family config --seed 2026 --case 98`: the mid block divides by it.
        Edit("unet/config.json", "mid_block_scale_factor", 1e-320);
        var e = Assert.Throws<ConfigException>(() => StableDiffusionPipeline.FromPretrained(model).Dispose());
        Assert.Contains(Path.Combine("unet", "config.json") + ": field 'mid_block_scale_factor' must be in [0.001, 1000]", e.Message);
    }
}

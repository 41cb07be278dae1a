using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.Config;
using Xunit;

namespace LatentDiffusion.Autoencoder.Tests;

/// <summary>Every field of each VAE config set to null, 0, −1, 1e30 and "NaN": a ConfigException naming it, or a model.</summary>
public class ConfigFuzzTests
{
    private const string Source = "vae/config.json";

    [Fact]
    public void AutoencoderKLConfigMutantsFailNamingTheFieldOrBuild()
    {
        var json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures/autoencoder/sd_tiny_vae/config.json"));
        var count = ConfigFuzz.Run(json, Source, ModelConfig.Parse<AutoencoderKLConfig>, c => new AutoencoderKL(c).Dispose());
        Assert.InRange(count, 100, 600);
    }

    [Fact]
    public void AutoencoderTinyConfigMutantsFailNamingTheFieldOrBuild()
    {
        var small = new AutoencoderTinyConfig
        {
            EncoderBlockOutChannels = [8, 8], DecoderBlockOutChannels = [8, 8], NumEncoderBlocks = [1, 1], NumDecoderBlocks = [1, 1],
            BlockOutChannels = [8, 8],
        };
        var json = System.Text.Json.JsonSerializer.Serialize(small, ConfigJson.Options);
        var count = ConfigFuzz.Run(json, Source, ModelConfig.Parse<AutoencoderTinyConfig>, c => new AutoencoderTiny(c).Dispose());
        Assert.InRange(count, 100, 600);
    }
}

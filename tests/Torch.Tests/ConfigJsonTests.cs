using System.Text.Json.Serialization;
using LatentDiffusion.Torch.Config;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

public class ConfigJsonTests
{
    private sealed record SampleConfig
    {
        [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [64];
        [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;
        [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
        [JsonPropertyName("shift_factor")] public double? ShiftFactor { get; init; } = 1;
    }

    [Fact]
    public void ReadsConfigNamesIgnoresMetadataAndKeepsDefaults()
    {
        var c = ConfigJson.Parse<SampleConfig>("""{"_class_name":"X","_diffusers_version":"0.30.3","block_out_channels":[32,64]}""", "config.json");
        Assert.Equal([32, 64], c.BlockOutChannels);
        Assert.Equal(1e-5, c.NormEps);
        Assert.Equal("silu", c.ActFn);
    }

    [Fact]
    public void UnknownFieldIsAnErrorNamingIt()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<SampleConfig>("""{"block_out_chanels":[1]}""", "unet/config.json"));
        Assert.Contains("unet/config.json", e.Message);
        Assert.Contains("'block_out_chanels'", e.Message);
    }

    [Fact]
    public void WrongTypeNamesTheField()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<SampleConfig>("""{"norm_eps":"small"}""", "c.json"));
        Assert.Contains("'norm_eps'", e.Message);
    }

    [Theory]
    [InlineData("block_out_channels")]
    [InlineData("act_fn")]
    public void NullForANonNullableFieldNamesIt(string field)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<SampleConfig>($$"""{"{{field}}": null}""", "unet/config.json"));
        Assert.Contains("unet/config.json", e.Message);
        Assert.Contains($"field '{field}' must not be null", e.Message);
    }

    [Fact]
    public void NullForANullableFieldIsAllowed()
    {
        var c = ConfigJson.Parse<SampleConfig>("""{"shift_factor": null}""", "c.json");
        Assert.Null(c.ShiftFactor);
    }

    [Fact]
    public void InvalidJsonIsReported()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<SampleConfig>("{", "c.json"));
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void SaveWritesClassNameFirstAndRoundTrips()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("ld-config-").FullName, "config.json");
        ConfigJson.Save(path, new SampleConfig { BlockOutChannels = [8, 16] }, "UNet2DModel");
        var text = File.ReadAllText(path);
        Assert.StartsWith("{\n  \"_class_name\": \"UNet2DModel\"", text.Replace("\r", ""));
        Assert.Equal("UNet2DModel", ConfigJson.ClassName(path));
        Assert.Equal([8, 16], ConfigJson.Load<SampleConfig>(path).BlockOutChannels);
    }
}

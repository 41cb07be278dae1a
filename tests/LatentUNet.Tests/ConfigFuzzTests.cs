using LatentDiffusion.LatentUNet.ConvNeXt;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.Config;
using Xunit;

namespace LatentDiffusion.LatentUNet.Tests;

/// <summary>Every field of each U-Net config set to null, 0, −1, 1e30 and "NaN": a ConfigException naming it, or a model.</summary>
public class ConfigFuzzTests
{
    private const string Source = "unet/config.json";

    [Fact]
    public void UNet2DConditionModelConfigMutantsFailNamingTheFieldOrBuild()
    {
        var json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures/latentunet/sd_tiny/unet/config.json"));
        var count = ConfigFuzz.Run(json, Source, ModelConfig.Parse<UNet2DConditionModelConfig>, c => new UNet2DConditionModel(c).Dispose());
        Assert.InRange(count, 200, 600);
    }

    [Fact]
    public void ControlNetModelConfigMutantsFailNamingTheFieldOrBuild()
    {
        var json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures/latentunet/controlnet_tiny/config.json"));
        var count = ConfigFuzz.Run(json, "controlnet/config.json", ModelConfig.Parse<ControlNetModelConfig>, c => new ControlNetModel(c).Dispose());
        Assert.InRange(count, 150, 600);
    }

    [Fact]
    public void UNet2DModelConfigMutantsFailNamingTheFieldOrBuild()
    {
        var json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures/latentunet/ddpm_tiny/unet/config.json"));
        var count = ConfigFuzz.Run(json, Source, ModelConfig.Parse<UNet2DModelConfig>, c => new UNet2DModel(c).Dispose());
        Assert.InRange(count, 100, 600);
    }

    [Fact]
    public void ConvNeXtUNetConfigMutantsFailNamingTheFieldOrBuild()
    {
        var json = ConfigJsonText(new ConvNeXtUNetConfig { Dim = 8, DimMults = [1, 2], Channels = 1, SampleSize = 8, InitDim = 8, OutDim = 1 });
        var count = ConfigFuzz.Run(json, Source, ModelConfig.Parse<ConvNeXtUNetConfig>, c => new ConvNeXtUNet(c).Dispose());
        Assert.InRange(count, 40, 200);
    }

    private static string ConfigJsonText<T>(T config) => System.Text.Json.JsonSerializer.Serialize(config, ConfigJson.Options);
}

using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Autoencoder.Tests;

public class AutoencoderKLModelTests
{
    [SharedDataFact]
    public void Sd15VaeHasDiffusersArchitecture()
    {
        var config = AutoencoderKLConfig.Load(SharedData.Path("data/sd15-config/vae/config.json"));
        Assert.Equal([128, 256, 512, 512], config.BlockOutChannels);
        Assert.Equal(0.18215, config.ScalingFactor); // the default: SD1.5's config predates the field
        Assert.Equal(8, config.DownscaleFactor);
        using (Init.SkipInitialization())
        using (var vae = new AutoencoderKL(config))
        {
            Assert.Equal(83_653_863, vae.ParameterCount);
            var names = vae.StateDict().Keys.ToHashSet();
            Assert.Equal(248, names.Count);
            foreach (var key in new[]
            {
                "encoder.conv_in.weight",
                "encoder.down_blocks.0.resnets.1.norm2.bias",
                "encoder.down_blocks.0.downsamplers.0.conv.weight",
                "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
                "encoder.mid_block.attentions.0.group_norm.weight",
                "encoder.mid_block.attentions.0.to_q.weight",
                "encoder.mid_block.attentions.0.to_out.0.bias",
                "encoder.conv_norm_out.weight",
                "encoder.conv_out.weight",
                "decoder.up_blocks.0.resnets.2.conv2.weight",
                "decoder.up_blocks.0.upsamplers.0.conv.weight",
                "decoder.up_blocks.3.resnets.0.conv_shortcut.weight",
                "decoder.mid_block.resnets.1.conv1.weight",
                "quant_conv.weight",
                "post_quant_conv.bias",
            })
                Assert.Contains(key, names);
            Assert.DoesNotContain("encoder.down_blocks.3.downsamplers.0.conv.weight", names);
            Assert.DoesNotContain("decoder.up_blocks.3.upsamplers.0.conv.weight", names);
            Assert.Equal([512, 512], vae.Encoder.MidBlock.Attentions![0].ToQ.Weight.Shape);
        }
    }

    [Fact]
    public void LoadingConsumesEveryTensorOfTheDiffusersFile()
    {
        using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
        using var file = SafeTensorsFile.Open(Path.Combine(AutoencoderKLGoldenTests.TinyVae, "diffusion_pytorch_model.safetensors"));
        Assert.Equal(file.Keys.Order(StringComparer.Ordinal), vae.StateDict().Keys.Order(StringComparer.Ordinal));
        Assert.False(vae.IsTraining);
    }

    [Fact]
    public void SaveThenLoadRoundTripsConfigAndWeights()
    {
        var directory = Directory.CreateTempSubdirectory("ld-vae-").FullName;
        try
        {
            using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
            vae.Save(directory);
            Assert.Equal("AutoencoderKL", ConfigJson.ClassName(Path.Combine(directory, "config.json")));
            var text = File.ReadAllText(Path.Combine(directory, "config.json"));
            Assert.Contains("\"latents_mean\": null", text);
            Assert.Contains("\"down_block_types\"", text);
            using var loaded = AutoencoderKL.FromPretrained(directory);
            Assert.Equal(vae.Config.BlockOutChannels, loaded.Config.BlockOutChannels);
            Assert.Equal(vae.Config with { BlockOutChannels = [], DownBlockTypes = [], UpBlockTypes = [] },
                loaded.Config with { BlockOutChannels = [], DownBlockTypes = [], UpBlockTypes = [] });
            var original = vae.StateDict();
            foreach (var (name, tensor) in loaded.StateDict()) Assert.True(tensor.Equal(original[name]), name);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("""{"down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"], "block_out_channels": [32, 64], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}""", "down_block_types[1]")]
    [InlineData("""{"up_block_types": ["AttnUpDecoderBlock2D"]}""", "up_block_types[0]")]
    [InlineData("""{"act_fn": "tanh"}""", "act_fn")]
    [InlineData("""{"norm_num_groups": 5}""", "norm_num_groups")]
    [InlineData("""{"block_out_channels": [32, 64]}""", "down_block_types")]
    [InlineData("""{"latents_mean": [0.1, 0.2]}""", "latents_mean")]
    [InlineData("""{"layers_per_block": 0}""", "layers_per_block")]
    public void UnsupportedConfigValuesAreErrorsNamingTheField(string json, string field)
    {
        var config = ConfigJson.Parse<AutoencoderKLConfig>(json, "vae/config.json");
        var e = Assert.Throws<ConfigException>(() => config.Validate("vae/config.json"));
        Assert.Contains($"'{field}'", e.Message);
        Assert.Throws<ConfigException>(() => new AutoencoderKL(config));
    }

    [Fact]
    public void UnknownConfigFieldIsAnError()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigJson.Parse<AutoencoderKLConfig>("""{"sample_sise": 64}""", "vae/config.json"));
        Assert.Contains("'sample_sise'", e.Message);
    }

    [Fact]
    public void DefaultsAreDiffusers()
    {
        var c = ConfigJson.Parse<AutoencoderKLConfig>("{}", "config.json");
        Assert.Equal(3, c.InChannels);
        Assert.Equal(["DownEncoderBlock2D"], c.DownBlockTypes);
        Assert.Equal([64], c.BlockOutChannels);
        Assert.Equal(1, c.LayersPerBlock);
        Assert.Equal("silu", c.ActFn);
        Assert.Equal(4, c.LatentChannels);
        Assert.Equal(32, c.NormNumGroups);
        Assert.Equal(32, c.SampleSize);
        Assert.Equal(0.18215, c.ScalingFactor);
        Assert.Null(c.ShiftFactor);
        Assert.Null(c.LatentsMean);
        Assert.True(c.ForceUpcast && c.UseQuantConv && c.UsePostQuantConv && c.MidBlockAddAttention);
    }

    [Fact]
    public void WithoutQuantConvsAndMidAttentionTheModulesAreAbsent()
    {
        var config = new AutoencoderKLConfig { BlockOutChannels = [32, 32], DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D"],
            UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D"], UseQuantConv = false, UsePostQuantConv = false, MidBlockAddAttention = false, NormNumGroups = 8 };
        using var vae = new AutoencoderKL(config);
        var names = vae.StateDict().Keys.ToList();
        Assert.DoesNotContain(names, n => n.StartsWith("quant_conv") || n.StartsWith("post_quant_conv") || n.Contains("attentions"));
        using var noGrad = Autograd.NoGrad();
        using var x = Tensors.Zeros([1, 3, 16, 16]);
        using var y = vae.Forward(x);
        Assert.Equal([1, 3, 16, 16], y.Shape);
    }

    [Fact]
    public void ScaleAndUnscaleLatentsUseScalingAndShiftFactors()
    {
        var config = new AutoencoderKLConfig { ScalingFactor = 0.5, ShiftFactor = 0.25, BlockOutChannels = [32], NormNumGroups = 8 };
        using var vae = new AutoencoderKL(config);
        using var z = Tensor.From([1f, 2f], 2);
        using var scaled = vae.ScaleLatents(z);
        Assert.Equal([0.375f, 0.875f], scaled.ToArray<float>());
        using var back = vae.UnscaleLatents(scaled);
        Assert.Equal([1f, 2f], back.ToArray<float>());
    }
}

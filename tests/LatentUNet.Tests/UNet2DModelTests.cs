using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.LatentUNet.Tests;

public class UNet2DModelTests(ITestOutputHelper output)
{
    private static string TinyDir => SharedData.Fixture("latentunet/ddpm_tiny/unet");

    /// <summary>Golden #7: diffusers' UNet2DModel on ddpm_tiny (flip_sin_to_cos false, freq_shift 1, downsample_padding 0, one head).</summary>
    [Fact]
    public void MatchesDiffusersOnTheTinyDdpmUNet()
    {
        using var model = UNet2DModel.FromPretrained(TinyDir).Eval();
        using var golden = new Golden("goldens/unet2d_ddpm.safetensors");
        using var noGrad = Autograd.NoGrad();
        using var actual = model.Forward(golden["input.sample"], golden["input.timestep"]);
        var err = TensorAssert.Close(actual, golden["output.sample"], 3e-5, 1e-4, "unet2d_ddpm output.sample");
        output.WriteLine($"golden #7 unet2d_ddpm: max |diff| {err:E3}");
    }

    [Fact]
    public void ReadsTheTinyConfigTheDiffusersWay()
    {
        using var model = UNet2DModel.FromPretrained(TinyDir);
        Assert.Null(model.Config.AttentionHeadDim);
        Assert.Equal(0, model.Config.DownsamplePadding);
        Assert.False(model.Config.FlipSinToCos);
        var names = model.StateDict();
        // null attention_head_dim: one head spanning the 64 channels
        Assert.Equal([64L, 64], names["mid_block.attentions.0.to_q.weight"].Shape);
        Assert.Equal([32L, 32, 3, 3], names["down_blocks.0.downsamplers.0.conv.weight"].Shape);
        using var file = SafeTensorsFile.Open(Path.Combine(TinyDir, "diffusion_pytorch_model.safetensors"));
        Assert.Equal(file.Keys.Order(StringComparer.Ordinal), names.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void SavedFolderRoundTripsConfigWeightsAndOutputs()
    {
        using var model = UNet2DModel.FromPretrained(TinyDir).Eval();
        var dir = Directory.CreateTempSubdirectory("ld-unet2d-").FullName;
        try
        {
            model.Save(dir);
            Assert.Equal("UNet2DModel", ConfigJson.ClassName(Path.Combine(dir, "config.json")));
            using var file = SafeTensorsFile.Open(Path.Combine(dir, "diffusion_pytorch_model.safetensors"));
            Assert.Equal("pt", file.Metadata["format"]);
            // every field diffusers wrote comes back, with the same value
            var original = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TinyDir, "config.json")))!.AsObject();
            var saved = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            foreach (var (key, value) in original)
                if (!key.StartsWith('_')) Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(value, saved[key]) || NumericallyEqual(value, saved[key]), $"config field {key}: {value?.ToJsonString()} → {saved[key]?.ToJsonString()}");

            using var reloaded = UNet2DModel.FromPretrained(dir).Eval();
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(model.Config, ConfigJson.Options), System.Text.Json.JsonSerializer.Serialize(reloaded.Config, ConfigJson.Options));
            using var noGrad = Autograd.NoGrad();
            using var x = Tensors.Randn([1, 3, 16, 16], new Generator(1));
            using var a = model.Forward(x, 500);
            using var b = reloaded.Forward(x, 500);
            Assert.True(a.Equal(b));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static bool NumericallyEqual(System.Text.Json.Nodes.JsonNode? a, System.Text.Json.Nodes.JsonNode? b) =>
        a is System.Text.Json.Nodes.JsonValue va && b is System.Text.Json.Nodes.JsonValue vb
        && va.TryGetValue<double>(out var x) && vb.TryGetValue<double>(out var y) && x == y;

    /// <summary>Old checkpoints name the attention weights query/key/value/proj_attn; diffusers renames them on load.</summary>
    [Fact]
    public void LoadsDeprecatedAttentionBlockNames()
    {
        var dir = Directory.CreateTempSubdirectory("ld-unet2d-old-").FullName;
        try
        {
            File.Copy(Path.Combine(TinyDir, "config.json"), Path.Combine(dir, "config.json"));
            var tensors = SafeTensorsFile.LoadFile(Path.Combine(TinyDir, "diffusion_pytorch_model.safetensors"));
            var renamed = tensors.ToDictionary(kv => kv.Key.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.")
                .Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn."), kv => kv.Value);
            Assert.Contains("mid_block.attentions.0.proj_attn.weight", renamed.Keys);
            SafeTensorsFile.Save(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), renamed);
            foreach (var t in tensors.Values) t.Dispose();

            using var model = UNet2DModel.FromPretrained(dir).Eval();
            using var golden = new Golden("goldens/unet2d_ddpm.safetensors");
            using var noGrad = Autograd.NoGrad();
            using var actual = model.Forward(golden["input.sample"], golden["input.timestep"]);
            TensorAssert.Close(actual, golden["output.sample"], 3e-5, 1e-4);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static TheoryData<string> Variants => new()
    {
        """{"time_embedding_type": "fourier"}""",
        """{"time_embedding_type": "learned", "num_train_timesteps": 1000}""",
        """{"num_class_embeds": 10}""",
        """{"class_embed_type": "timestep"}""",
        """{"resnet_time_scale_shift": "scale_shift"}""",
        """{"downsample_type": "resnet", "upsample_type": "resnet"}""",
        """{"attention_head_dim": 8, "add_attention": false, "center_input_sample": true, "layers_per_block": 2}""",
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void ConfigVariantsBuildAndPredictNoiseOfTheSampleShape(string overrides)
    {
        var config = ConfigJson.Parse<UNet2DModelConfig>(TinyJson(overrides), "test");
        TorchRuntime.ManualSeed(0);
        using var model = new UNet2DModel(config).Eval();
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = Tensors.Randn([2, 1, 8, 8], new Generator(0));
        var t = Tensor.From(new[] { 0.5f, 0.9f }, 2); // σ for fourier, else (truncated) steps
        if (config.TimeEmbeddingType == "learned") t = Tensor.From(new[] { 3L, 999L }, 2);
        var labels = config.NumClassEmbeds is not null ? Tensor.From(new[] { 1L, 7L }, 2)
            : config.ClassEmbedType is not null ? Tensor.From(new[] { 1L, 7L }, 2) : null;
        var y = model.Forward(x, t, labels);
        Assert.Equal(x.Shape, y.Shape);
        Assert.Equal(1.0, y.IsFinite().To(DType.Float32).Mean().Item());
    }

    [Fact]
    public void ClassConditionalModelNeedsLabels()
    {
        using var model = new UNet2DModel(ConfigJson.Parse<UNet2DModelConfig>(TinyJson("""{"num_class_embeds": 10}"""), "test"));
        using var x = Tensors.Zeros([1, 1, 8, 8]);
        Assert.Throws<ArgumentException>(() => model.Forward(x, 10));
        Assert.Equal([10L, 128], model.StateDict()["class_embedding.weight"].Shape); // time_embed_dim = 4 × 32
    }

    [Theory]
    [InlineData("""{"time_embedding_type": "sinusoid"}""", "time_embedding_type")]
    [InlineData("""{"down_block_types": ["SkipDownBlock2D", "AttnDownBlock2D"]}""", "down_block_types[0]")]
    [InlineData("""{"up_block_types": ["AttnUpBlock2D"]}""", "up_block_types")]
    [InlineData("""{"up_block_types": ["AttnUpBlock2D", "UpDecoderBlock2D"]}""", "up_block_types[1]")]
    [InlineData("""{"resnet_time_scale_shift": "spatial"}""", "resnet_time_scale_shift")]
    [InlineData("""{"act_fn": "quick_gelu"}""", "act_fn")]
    [InlineData("""{"class_embed_type": "projection"}""", "class_embed_type")]
    public void UnsupportedValuesAreErrorsNamingTheField(string overrides, string field)
    {
        var config = ConfigJson.Parse<UNet2DModelConfig>(TinyJson(overrides), "test");
        var e = Assert.Throws<ConfigException>(() => new UNet2DModel(config));
        Assert.Contains($"'{field}'", e.Message);
    }

    [Fact]
    public void UnsupportedValueInAFolderNamesTheFileAndField()
    {
        var dir = Directory.CreateTempSubdirectory("ld-unet2d-bad-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), TinyJson("""{"upsample_type": "fir"}"""));
            var e = Assert.Throws<ConfigException>(() => UNet2DModel.FromPretrained(dir));
            Assert.Contains("config.json", e.Message);
            Assert.Contains("'upsample_type'", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>A tiny 1-channel configuration (block widths 32/64, 8×8 inputs) with the given fields replaced.</summary>
    internal static string TinyJson(string overrides)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse("""
            {"_class_name": "UNet2DModel", "in_channels": 1, "out_channels": 1, "block_out_channels": [32, 64],
             "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
             "layers_per_block": 1, "attention_head_dim": null, "norm_eps": 1e-6, "downsample_padding": 0,
             "flip_sin_to_cos": false, "freq_shift": 1, "sample_size": 8}
            """)!.AsObject();
        foreach (var (key, value) in System.Text.Json.Nodes.JsonNode.Parse(overrides)!.AsObject().ToList())
            node[key] = value?.DeepClone();
        return node.ToJsonString();
    }
}

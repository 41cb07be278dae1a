using System.Text.Json;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Single-file ControlNets (control_v11p_sd15_*.safetensors layout): the tiny diffusers ControlNet written in the original
/// layout by the inverse of diffusers' conversion — the U-Net encoder keys from the LDM layout fixture (made by diffusers'
/// own converter), the hint block, zero convolutions and middle_block_out as convert_ldm_unet_checkpoint(controlnet=True)
/// names them — loads back to the same residuals.
/// </summary>
public sealed class ControlNetCheckpointTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-controlnet-file-").FullName;
    private static readonly string UNetConfig = Path.Combine(SharedData.RepositoryRoot, "tests/fixtures/latentunet/sd_tiny/unet/config.json");

    public void Dispose() => Directory.Delete(directory, recursive: true);

    /// <summary>diffusers name → original name, for every tensor of the tiny ControlNet.</summary>
    private static Dictionary<string, string> OriginalNames(IEnumerable<string> diffusersNames, string prefix)
    {
        var layout = JsonDocument.Parse(File.ReadAllText(SharedData.Fixture("pipeline/checkpoints/ldm_layout.json"))).RootElement;
        var unet = layout.GetProperty("pairs").EnumerateArray()
            .Where(e => e.GetProperty("diffusers").ValueKind == JsonValueKind.String && e.GetProperty("diffusers").GetString()!.StartsWith("unet/"))
            .ToDictionary(e => e.GetProperty("diffusers").GetString()!["unet/".Length..],
                e => e.GetProperty("original").GetString()!["model.diffusion_model.".Length..]);
        var names = new Dictionary<string, string>();
        foreach (var name in diffusersNames)
        {
            var (module, param) = (name[..name.LastIndexOf('.')], name[(name.LastIndexOf('.') + 1)..]);
            string original = module switch
            {
                "controlnet_cond_embedding.conv_in" => "input_hint_block.0",
                "controlnet_cond_embedding.conv_out" => "input_hint_block.14",
                "controlnet_mid_block" => "middle_block_out.0",
                _ when module.StartsWith("controlnet_cond_embedding.blocks.") => $"input_hint_block.{2 * int.Parse(module[33..]) + 2}",
                _ when module.StartsWith("controlnet_down_blocks.") => $"zero_convs.{module[23..]}.0",
                _ => unet[name][..^(param.Length + 1)],
            };
            names[name] = prefix + original + "." + param;
        }
        return names;
    }

    private string WriteOriginalLayout(ControlNetModel model, string prefix)
    {
        var state = model.StateDict();
        var names = OriginalNames(state.Keys, prefix);
        var path = Path.Combine(directory, $"control_tiny{prefix.Length}.safetensors");
        SafeTensorsFile.Save(path, state.Select(kv => new KeyValuePair<string, Tensor>(names[kv.Key], kv.Value)));
        return path;
    }

    [Theory]
    [InlineData("control_model.")]
    [InlineData("")]
    public void AnOriginalLayoutFileLoadsToTheSameResiduals(string prefix)
    {
        using var reference = ControlNetModel.FromPretrained(ControlNetPipelineTests.ControlNetDir);
        var path = WriteOriginalLayout(reference, prefix);
        using (var file = SafeTensorsFile.Open(path))
        {
            Assert.Contains(prefix + "input_hint_block.14.weight", file.Keys);
            Assert.Contains(prefix + "zero_convs.5.0.weight", file.Keys);
            Assert.Contains(prefix + "input_blocks.3.0.op.weight", file.Keys);
        }
        using var loaded = ControlNetCheckpoint.Load(path, UNet2DConditionModelConfig.Load(UNetConfig));
        Assert.Equal([16, 32, 48, 64], loaded.Config.ConditioningEmbeddingOutChannels);
        foreach (var (name, tensor) in reference.StateDict()) Assert.True(tensor.Equal(loaded.StateDict()[name]), name);

        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var g = new Generator(5);
        var sample = Tensors.Randn([1, 4, 8, 8], g);
        var text = Tensors.Randn([1, 77, 32], g);
        var image = Tensors.Rand([1, 3, 64, 64], g);
        var expected = reference.Forward(sample, 400, text, image);
        var actual = loaded.Forward(sample, 400, text, image);
        for (int i = 0; i < expected.Down.Count; i++) Assert.True(actual.Down[i].Equal(expected.Down[i]));
        Assert.True(actual.Mid.Equal(expected.Mid));
    }

    [Fact]
    public void ThePipelineLoadsASingleFileControlNetForItsUNet()
    {
        using var reference = ControlNetModel.FromPretrained(ControlNetPipelineTests.ControlNetDir);
        var path = WriteOriginalLayout(reference, "control_model.");
        using var pipe = StableDiffusion.StableDiffusionPipeline.FromPretrained(TinyStableDiffusionFolder.Assemble(Path.Combine(directory, "sd")));
        using var loaded = pipe.LoadControlNet(path);
        var torch = Assert.IsType<Engines.TorchControlNet>(loaded);
        Assert.Equal("control_tiny14", torch.Name);
        foreach (var (name, tensor) in reference.StateDict()) Assert.True(tensor.Equal(torch.Module.StateDict()[name]), name);
    }

    [Fact]
    public void AFileOfAnotherLayoutIsRefusedInOneLine()
    {
        using var reference = ControlNetModel.FromPretrained(ControlNetPipelineTests.ControlNetDir);
        var path = WriteOriginalLayout(reference, "control_model.");
        // a ControlNet for a base model with one resnet per block: the file's extra tensors are named
        var oneLayer = UNet2DConditionModelConfig.Load(UNetConfig) with { LayersPerBlock = 1 };
        var e = Assert.Throws<InvalidDataException>(() => ControlNetCheckpoint.Load(path, oneLayer));
        Assert.StartsWith($"{path}: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        var notControl = Path.Combine(directory, "vae.safetensors");
        using (var t = Tensors.Zeros([4]))
            SafeTensorsFile.Save(notControl, [new KeyValuePair<string, Tensor>("first_stage_model.encoder.conv_in.bias", t)]);
        var refused = Assert.Throws<InvalidDataException>(() => ControlNetCheckpoint.Load(notControl, oneLayer));
        Assert.Equal($"{notControl}: not a ControlNet checkpoint (no input_hint_block / controlnet_cond_embedding tensors)", refused.Message);
        Assert.Throws<NotSupportedException>(() => ControlNetCheckpoint.Load(Path.Combine(directory, "x.pth"), oneLayer));
    }
}

using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Single-file SDXL checkpoints in Stability's layout: the tiny diffusers SDXL (and a tiny refiner) written out by the
/// inverse of diffusers' single-file conversion (<see cref="StabilityCheckpoint"/>, written from the sgm module names,
/// independently of <see cref="LdmKeyMapping"/>), loaded back, with the same outputs; base vs refiner told apart by the keys; converted
/// to a diffusers folder.
/// </summary>
public sealed class SdxlSingleFileTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("ldm-sdxl-single-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    [Fact]
    public void BaseCheckpointLoadsWithTheSameOutputsAndConvertsToAFolder()
    {
        var file = Path.Combine(work, "tiny_xl.safetensors");
        StabilityCheckpoint.Write(SdxlPipelineTests.TinyXl, file, refiner: false);
        using (var checkpoint = SingleFileCheckpoint.Open(file)) Assert.Equal(ModelFamily.StableDiffusionXL, checkpoint.Kind.Family);

        var request = new GenerationRequest { Prompt = "a (horse:1.2)", NegativePrompt = "blurry", Steps = 3, GuidanceScale = 5, Width = 64, Height = 64, Seed = 9 };
        using var folder = StableDiffusionPipeline.FromPretrained(SdxlPipelineTests.TinyXl);
        using var single = StableDiffusionPipeline.FromPretrained(file, new PipelineOptions { ConfigSource = SdxlPipelineTests.TinyXl });
        using var expected = folder.TextToImage(request);
        using var actual = single.TextToImage(request);
        Assert.Equal(0, TensorAssert.MaxAbsDifference(expected.Latents, actual.Latents));

        // ldm convert's path: the single file saved as a diffusers folder loads as an SDXL pipeline with the same outputs.
        var converted = Path.Combine(work, "converted");
        single.Save(converted);
        Assert.Contains("StableDiffusionXLPipeline", File.ReadAllText(Path.Combine(converted, "model_index.json")));
        using var reloaded = StableDiffusionPipeline.FromPretrained(converted);
        using var again = reloaded.TextToImage(request);
        Assert.Equal(0, TensorAssert.MaxAbsDifference(expected.Latents, again.Latents));
    }

    [Fact]
    public void RefinerCheckpointIsToldApartByItsKeysAndLoads()
    {
        using var refinerFolder = new TinyXlFolder();
        refinerFolder.MakeRefiner();
        var file = Path.Combine(work, "tiny_refiner.safetensors");
        StabilityCheckpoint.Write(refinerFolder.Path, file, refiner: true);
        using (var checkpoint = SingleFileCheckpoint.Open(file)) Assert.Equal(ModelFamily.StableDiffusionXLRefiner, checkpoint.Kind.Family);

        using var folder = StableDiffusionPipeline.FromPretrained(refinerFolder.Path);
        using var single = StableDiffusionPipeline.FromPretrained(file, new PipelineOptions { ConfigSource = refinerFolder.Path });
        Assert.True(single.IsRefiner);
        using var start = Tensors.Randn([1, 4, 8, 8], new Generator(2));
        var request = new GenerationRequest { Prompt = "a horse", Steps = 4, GuidanceScale = 5 };
        using var expected = folder.Refine(request, start, 0.5);
        using var actual = single.Refine(request, start, 0.5);
        Assert.Equal(0, TensorAssert.MaxAbsDifference(expected.Latents, actual.Latents));

        var converted = Path.Combine(work, "refiner");
        single.Save(converted);
        using var reloaded = StableDiffusionPipeline.FromPretrained(converted);
        Assert.True(reloaded.IsRefiner);
        Assert.False(Directory.Exists(Path.Combine(converted, "text_encoder")));
    }

    [Fact]
    public void RealSdxlConfigsDescribeStabilitysArchitecture()
    {
        string Config(string name) => Path.Combine(SharedData.RepositoryRoot, "configs", "models", name);
        var baseUnet = UNet2DConditionModelConfig.Load(Config("sdxl-base-unet.json"));
        var refinerUnet = UNet2DConditionModelConfig.Load(Config("sdxl-refiner-unet.json"));
        var clipL = ClipTextConfig.Load(Config("sdxl-base-text-encoder.json"));
        var bigG = ClipTextConfig.Load(Config("sdxl-base-text-encoder-2.json"));
        Assert.Equal(clipL.HiddenSize + bigG.HiddenSize, baseUnet.CrossAttentionDim.Value);           // context_dim 2048
        Assert.Equal(bigG.ProjectionDim + 6 * baseUnet.AdditionTimeEmbedDim, baseUnet.ProjectionClassEmbeddingsInputDim); // adm_in_channels 2816
        Assert.Equal(bigG.HiddenSize, refinerUnet.CrossAttentionDim.Value);                             // 1280
        Assert.Equal(bigG.ProjectionDim + 5 * refinerUnet.AdditionTimeEmbedDim, refinerUnet.ProjectionClassEmbeddingsInputDim); // 2560
        Assert.Equal([320, 640, 1280], baseUnet.BlockOutChannels);
        Assert.Equal([1, 2, 10], baseUnet.TransformerLayersPerBlock.PerBlock(3, "transformer_layers_per_block"));
        baseUnet.Validate();
        refinerUnet.Validate();
    }
}

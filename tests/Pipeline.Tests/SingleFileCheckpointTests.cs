using System.Text.Json;
using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public sealed class SingleFileCheckpointTests : IDisposable
{
    private sealed record Pair(string Original, string? Diffusers, long[] Shape, string Transform);

    private readonly string directory = Directory.CreateTempSubdirectory("ld-single-file-").FullName;
    private static readonly JsonElement Layout = JsonDocument.Parse(File.ReadAllText(SharedData.Fixture("pipeline/checkpoints/ldm_layout.json"))).RootElement;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static List<Pair> Pairs(string section) =>
        Layout.GetProperty(section).EnumerateArray().Select(e => new Pair(
            e.GetProperty("original").GetString()!,
            e.GetProperty("diffusers").ValueKind == JsonValueKind.Null ? null : e.GetProperty("diffusers").GetString(),
            e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(),
            e.GetProperty("transform").GetString()!)).ToList();

    /// <summary>Writes an original-layout checkpoint of random tensors; returns the tensors by original name.</summary>
    private Dictionary<string, Tensor> WriteCheckpoint(string name, IEnumerable<Pair> pairs)
    {
        var g = new Generator(11);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var p in pairs)
            if (!tensors.ContainsKey(p.Original)) tensors[p.Original] = Tensors.Randn(p.Shape, g);
        SafeTensorsFile.Save(Path.Combine(directory, name), tensors);
        return tensors;
    }

    private static Tensor Expected(Tensor original, string transform) => transform switch
    {
        "None" => original,
        "SqueezeConv1x1" => original.Flatten(1),
        _ => original.Narrow(0, (transform == "QueryThird" ? 0 : transform == "KeyThird" ? 1 : 2) * (original.Size(0) / 3), original.Size(0) / 3),
    };

    private static void AssertComponent(SingleFileCheckpoint checkpoint, string component, List<Pair> pairs, Dictionary<string, Tensor> originals, int? maxTextLayers = null)
    {
        var expected = pairs.Where(p => p.Diffusers is not null && p.Diffusers.StartsWith(component + "/", StringComparison.Ordinal)).ToList();
        var loaded = checkpoint.Load(component, maxTextLayers: maxTextLayers);
        Assert.Equal(expected.Select(p => p.Diffusers![(component.Length + 1)..]).Order(), loaded.Keys.Order());
        foreach (var p in expected)
        {
            using var want = Expected(originals[p.Original], p.Transform);
            Assert.True(want.Equal(loaded[p.Diffusers![(component.Length + 1)..]]), $"{p.Original} → {p.Diffusers}");
        }
    }

    [Fact]
    public void Sd1LayoutIsRenamedToDiffusersWithEveryTensorAccountedFor()
    {
        using var scope = DisposeScope.Enter();
        var pairs = Pairs("pairs");
        var originals = WriteCheckpoint("sd1.safetensors", pairs);
        using var checkpoint = SingleFileCheckpoint.Open(Path.Combine(directory, "sd1.safetensors"), new CheckpointKind(ModelFamily.StableDiffusion1, "epsilon"));
        Assert.Equal(["text_encoder", "unet", "vae"], checkpoint.Components.Order());
        AssertComponent(checkpoint, "unet", pairs, originals);
        AssertComponent(checkpoint, "vae", pairs, originals);
        AssertComponent(checkpoint, "text_encoder", pairs, originals);
    }

    [Fact]
    public void OpenClipTextEncoderIsSplitIntoQueryKeyValueAndTrainingTensorsAreDropped()
    {
        using var scope = DisposeScope.Enter();
        var unetAndVae = Pairs("pairs").Where(p => !p.Original.StartsWith("cond_stage_model.", StringComparison.Ordinal));
        var openClip = Pairs("openclip");
        var originals = WriteCheckpoint("sd2.safetensors", unetAndVae.Concat(openClip));
        using var checkpoint = SingleFileCheckpoint.Open(Path.Combine(directory, "sd2.safetensors"), new CheckpointKind(ModelFamily.StableDiffusion2, "v_prediction"));
        AssertComponent(checkpoint, "text_encoder", openClip, originals);

        // diffusers' SD 2.x text encoder keeps all but OpenCLIP's last layer.
        var firstLayerOnly = checkpoint.Load("text_encoder", maxTextLayers: 1);
        Assert.Contains("text_model.encoder.layers.0.self_attn.k_proj.weight", firstLayerOnly.Keys);
        Assert.DoesNotContain(firstLayerOnly.Keys, k => k.StartsWith("text_model.encoder.layers.1.", StringComparison.Ordinal));
    }

    [Fact]
    public void LayoutNumbersAreInferredFromKeys()
    {
        var pairs = Pairs("pairs");
        var mapping = LdmKeyMapping.Infer(pairs.Select(p => p.Original));
        foreach (var p in pairs)
            Assert.Equal(p.Diffusers, mapping.Map(p.Original) is { } m ? m.Component + "/" + m.Name : null);
    }

    [Theory]
    [InlineData(768, ModelFamily.StableDiffusion1, "epsilon")]
    [InlineData(1024, ModelFamily.StableDiffusion2, "v_prediction")]
    public void FamilyIsInferredFromTheCrossAttentionWidth(long width, ModelFamily family, string prediction)
    {
        var shapes = new Dictionary<string, long[]> { ["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [320, width] };
        Assert.Equal(new CheckpointKind(family, prediction), CheckpointKind.Infer(shapes, "m.safetensors"));
    }

    [Fact]
    public void UnknownFamilyAndUnknownTensorsAreReportedByName()
    {
        var shapes = new Dictionary<string, long[]> { ["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [320, 32] };
        var e = Assert.Throws<InvalidDataException>(() => CheckpointKind.Infer(shapes, "m.safetensors"));
        Assert.Contains("unknown model family", e.Message);

        var noUnet = Assert.Throws<InvalidDataException>(() => CheckpointKind.Infer(new Dictionary<string, long[]> { ["x"] = [1] }, "m.safetensors"));
        Assert.Contains("not a Stable Diffusion checkpoint", noUnet.Message);

        var mapping = LdmKeyMapping.Infer(Pairs("pairs").Select(p => p.Original));
        var unknown = Assert.Throws<InvalidDataException>(() => mapping.Map("model.diffusion_model.mystery.weight"));
        Assert.Contains("model.diffusion_model.mystery.weight", unknown.Message);
    }

    [Fact]
    public void PickleCheckpointsAreRefusedWithTheReason()
    {
        var path = Path.Combine(directory, "model.ckpt");
        File.WriteAllBytes(path, [0x80, 0x02]);
        var e = Assert.Throws<NotSupportedException>(() => SingleFileCheckpoint.Open(path));
        Assert.Contains("pickle", e.Message);
    }
}

/// <summary>The single-file path end to end: the tiny model's real weights, renamed to the original layout, reproduce golden #9.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class SingleFilePipelineTests : IClassFixture<TinyStableDiffusion>
{
    private readonly TinyStableDiffusion tiny;

    public SingleFilePipelineTests(TinyStableDiffusion tiny) => this.tiny = tiny;

    /// <summary>The tiny model written as one original-layout .safetensors file; <paramref name="adjust"/> may replace a tensor (by original name).</summary>
    internal static string WriteTinySingleFile(TinyStableDiffusion tiny, Func<string, Tensor, Tensor>? adjust = null)
    {
        var layout = JsonDocument.Parse(File.ReadAllText(SharedData.Fixture("pipeline/checkpoints/ldm_layout.json"))).RootElement;
        var original = new Dictionary<string, Tensor>();
        foreach (var pair in layout.GetProperty("pairs").EnumerateArray())
        {
            var diffusers = pair.GetProperty("diffusers").GetString()!;
            var slash = diffusers.IndexOf('/');
            var (component, name) = (diffusers[..slash], diffusers[(slash + 1)..]);
            var file = component == "text_encoder" ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
            using var weights = SafeTensorsFile.Open(Path.Combine(tiny.Directory, component, file));
            var tensor = weights.Load(name);
            // The VAE's attention projections are 1×1 convolutions in the original layout.
            original[pair.GetProperty("original").GetString()!] = pair.GetProperty("transform").GetString() == "SqueezeConv1x1" ? tensor.Reshape([.. tensor.Shape, 1, 1]) : tensor;
        }
        if (adjust is not null) foreach (var key in original.Keys.ToList()) original[key] = adjust(key, original[key]);
        var path = Path.Combine(Directory.CreateTempSubdirectory("ld-single-").FullName, "tiny.safetensors");
        SafeTensorsFile.Save(path, original);
        return path;
    }

    [Fact]
    public void OriginalLayoutCheckpointGeneratesTheGoldenImage()
    {
        using var scope = DisposeScope.Enter();
        var path = WriteTinySingleFile(tiny);

        using var pipe = StableDiffusion.StableDiffusionPipeline.FromSingleFile(path, new StableDiffusion.PipelineOptions
        {
            ConfigSource = tiny.Directory,
            CheckpointKind = new CheckpointKind(ModelFamily.StableDiffusion1, "epsilon"),
        });
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/sd_txt2img_pndm.safetensors"));
        using var result = pipe.TextToImage(new StableDiffusion.GenerationRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 5,
            Width = 64,
            Height = 64,
            Latents = golden.Load("input.latents"),
        });
        using var expected = golden.Load("output.latents");
        using var diff = (result.Latents - expected).Abs();
        using var worst = diff.Max();
        Assert.True(worst.Item() < 3e-4, $"max error {worst.Item():g3}");
    }
}

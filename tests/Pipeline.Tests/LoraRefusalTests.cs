using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>Bad LoRA files: one line each naming the problem, and the pipeline left exactly as it was.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class LoraRefusalTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>, IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("ld-lora-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>The kohya fixture with <paramref name="edit"/> applied to its tensors, saved under <paramref name="name"/>.</summary>
    private string Variant(string name, Action<Dictionary<string, Tensor>> edit)
    {
        var tensors = SafeTensorsFile.LoadFile(LoraTests.Kohya);
        edit(tensors);
        var path = Path.Combine(folder, name);
        SafeTensorsFile.Save(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return path;
    }

    private const string Q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";

    [Fact]
    public void ALoraForAnotherArchitectureIsRefusedBeforeAnyWeightChanges()
    {
        var path = Variant("wide.safetensors", t =>
        {
            t[Q + ".lora_down.weight"] = Tensors.Ones([4, 48]);
        });
        using var pipe = tiny.Load();
        var good = pipe.Loras.Load(LoraTests.Peft);
        var before = pipe.Unet.StateDict().ToDictionary(p => p.Key, p => p.Value.Clone().DetachFromDisposeScope());
        var e = Assert.Throws<InvalidDataException>(() => pipe.Loras.Apply([new LoraSelection(good), new LoraSelection(pipe.Loras.Load(path))]));
        Assert.Contains("down [4, 48] and up [32, 4] do not fit unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q [32, 32]: the LoRA was made for another architecture", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(pipe.Loras.Active);
        foreach (var (name, tensor) in pipe.Unet.StateDict()) Assert.True(before[name].Equal(tensor), name);
        foreach (var t in before.Values) t.Dispose();
    }

    [Fact]
    public void A2DLoraOnAOneByOneConvolutionMergesAsIts4DForm()
    {
        // SD 2.x's proj_in is a Linear where SD 1.x has a 1×1 convolution: A1111 and diffusers apply either LoRA shape to either.
        const string P = "lora_unet_down_blocks_0_attentions_0_proj_in";
        var flat = Variant("flat.safetensors", t =>
        {
            t[P + ".lora_down.weight"] = t[P + ".lora_down.weight"].Reshape(2, 32);
            t[P + ".lora_up.weight"] = t[P + ".lora_up.weight"].Reshape(32, 2);
        });
        using var pipe = tiny.Load();
        var weight = pipe.Unet.StateDict()["down_blocks.0.attentions.0.proj_in.weight"];
        pipe.Loras.Apply([new LoraSelection(pipe.Loras.Load(LoraTests.Kohya))]);
        using var expected = weight.Clone();
        pipe.Loras.Apply([new LoraSelection(pipe.Loras.Load(flat))]);
        Assert.True(weight.Equal(expected));
    }

    [Fact]
    public void ARankThatDoesNotMatchBetweenUpAndDownIsRefused()
    {
        var path = Variant("rank.safetensors", t => t[Q + ".lora_up.weight"] = Tensors.Ones([32, 3]));
        var e = Assert.Throws<InvalidDataException>(() => LoraFile.Load(path));
        Assert.Contains($"{Q}: rank mismatch: {Q}.lora_down.weight [4, 32] has rank 4 but {Q}.lora_up.weight [32, 3] has rank 3", e.Message);
    }

    [Fact]
    public void NonFiniteWeightsAreRefused()
    {
        var path = Variant("nan.safetensors", t => t[Q + ".lora_up.weight"] = Tensors.Full([32, 4], double.NaN));
        var e = Assert.Throws<InvalidDataException>(() => LoraFile.Load(path));
        Assert.Contains($"'{Q} (up)' has 128 non-finite values", e.Message);
    }

    [Fact]
    public void AHalfMissingModuleIsRefused()
    {
        var path = Variant("half.safetensors", t => t.Remove(Q + ".lora_up.weight"));
        var e = Assert.Throws<InvalidDataException>(() => LoraFile.Load(path));
        Assert.Contains($"module {Q} has a down weight but no up weight", e.Message);
    }

    [Theory]
    [InlineData(".pt")]
    [InlineData(".ckpt")]
    [InlineData(".bin")]
    public void PickleFilesAreRefusedWithTheWayToConvertThem(string extension)
    {
        var path = Path.Combine(folder, "style" + extension);
        File.WriteAllBytes(path, [0x80, 0x02]);
        var e = Assert.Throws<NotSupportedException>(() => LoraFile.Load(path));
        Assert.Contains("pickle format", e.Message);
        Assert.Contains("convert it to .safetensors", e.Message);
    }

    [Fact]
    public void AMissingFileIsOneLine()
    {
        var e = Assert.Throws<FileNotFoundException>(() => LoraFile.Load(Path.Combine(folder, "absent.safetensors")));
        Assert.EndsWith("absent.safetensors: LoRA file not found", e.Message);
    }

    [Fact]
    public void KeysThatMapToNoLayerAreListedInAWarningOrRefusedWhenStrict()
    {
        var path = Variant("extra.safetensors", t =>
        {
            t["lora_unet_no_such_block_proj.lora_down.weight"] = Tensors.Zeros([2, 8]);
            t["lora_unet_no_such_block_proj.lora_up.weight"] = Tensors.Zeros([8, 2]);
            t["lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a"] = Tensors.Zeros([2, 2]);
        });
        using var pipe = tiny.Load();
        var file = pipe.Loras.Load(path);
        Assert.Equal(["lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a"], file.UnknownKeys);
        var before = pipe.Unet.StateDict()["conv_in.weight"].Clone();
        Assert.Throws<InvalidDataException>(() => pipe.Loras.Apply([new LoraSelection(file)], strict: true));
        Assert.Empty(pipe.Loras.Active);
        var warning = Assert.Single(pipe.Loras.Apply([new LoraSelection(file)]));
        Assert.Contains("2 keys map to no layer of this model and are ignored: lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a, lora_unet_no_such_block_proj", warning);
        Assert.Single(pipe.Loras.Active);
        before.Dispose();
    }

    [Fact]
    public void TheHashIsAutomatic1111sAddnetHashOfTheTensorData()
    {
        // sha256 of the bytes after the safetensors header (sd-webui-additional-networks' hash), first 12 hex digits.
        using var kohya = LoraFile.Load(LoraTests.Kohya);
        using var peft = LoraFile.Load(LoraTests.Peft);
        Assert.Equal("b7b73971d6be", kohya.ShortHash);
        Assert.Equal("82642c949e1a", peft.ShortHash);
    }

    [Fact]
    public void MalformedPromptTagsAreOneLine()
    {
        var (prompt, loras) = LoraPromptTags.Extract("a <lora:style> b <lora:other:0.5:1.5>");
        Assert.Equal("a  b ", prompt);
        Assert.Equal([new LoraRequest("style"), new LoraRequest("other", 1.5, 0.5)], loras);
        var e = Assert.Throws<FormatException>(() => LoraPromptTags.Extract("<lora:style:strong>"));
        Assert.Equal("prompt tag <lora:style:strong>: 'strong' is not a multiplier (a number such as 0.8)", e.Message);
    }
}

/// <summary>Merging, restoring and generating with LoRAs keep the live-tensor count flat (run alone: the count is process-wide).</summary>
[Collection(LiveTensorCount.Name)]
public sealed class LoraMemoryTests
{
    [Fact]
    public void RequestsWithChangingLorasFreeEveryTemporaryAndOriginal()
    {
        var dir = TinyStableDiffusionFolder.Assemble(Directory.CreateTempSubdirectory("ld-lora-leak-").FullName);
        try
        {
            using var pipe = StableDiffusionPipeline.FromPretrained(dir);
            var plain = new GenerationRequest { Prompt = "x", Steps = 1, Width = 64, Height = 64 };
            var with = plain with { Loras = [new LoraRequest(LoraTests.Kohya, 0.5)] };
            // Both files read once first: the adapters keep what they read (27 modules × down and up each).
            using (pipe.TextToImage(with)) { }
            pipe.Loras.Load(LoraTests.Peft);
            using (pipe.TextToImage(plain)) { }
            var before = LiveTensorCount.Settled();
            using (pipe.TextToImage(with)) { }
            using (pipe.TextToImage(with with { Loras = [new LoraRequest(LoraTests.Peft, 0.7), new LoraRequest(LoraTests.Kohya, 0.2)] })) { }
            using (pipe.TextToImage(plain)) { }
            Assert.Equal(before, LiveTensorCount.Settled());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ANameInTheLoraDirectoryMayHoldDotsAndAPickleOfThatNameIsRefusedNotMissing()
    {
        var folder = Directory.CreateTempSubdirectory("ld-lora-dir-").FullName;
        try
        {
            File.Copy(LoraTests.Kohya, Path.Combine(folder, "style.v2.safetensors"));
            File.WriteAllBytes(Path.Combine(folder, "old.pt"), [0x80, 0x02]);
            using var adapters = new LoraAdapters(new Dictionary<string, Torch.NN.Module>()) { Directory = folder };
            Assert.Equal("style.v2", adapters.Load("style.v2").Name);
            Assert.Contains("pickle format (.pt)", Assert.Throws<NotSupportedException>(() => adapters.Load("old")).Message);
            Assert.Contains("LoRA 'none' not found in", Assert.Throws<FileNotFoundException>(() => adapters.Load("none")).Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

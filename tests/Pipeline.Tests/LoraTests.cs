using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Checks 9 and 10 of the v2 goldens: the same LoRA for the tiny model in kohya-ss and PEFT keys, merged at scale 1.0
/// (U-Net forward) and 0.8 (U-Net and text encoder, txt2img), against diffusers 0.30.3; plus exact removal and bad files.
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class LoraTests(TinyStableDiffusion tiny, ITestOutputHelper output) : IClassFixture<TinyStableDiffusion>
{
    public static string Kohya => SharedData.Fixture("pipeline/lora/sd_tiny_lora_kohya.safetensors");
    public static string Peft => SharedData.Fixture("pipeline/lora/sd_tiny_lora_peft.safetensors");

    [Theory]
    [InlineData("kohya")]
    [InlineData("peft")]
    public void MergedAtScaleOneTheUNetGivesTheGoldenOutputAndRestoreGivesTheWeightsBackBitForBit(string format)
    {
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/lora_unet.safetensors"));
        using var pipe = tiny.Load();
        var before = Snapshot(pipe);
        var file = pipe.Loras.Load(format == "kohya" ? Kohya : Peft);
        Assert.Equal(27, file.Modules.Count);
        Assert.Empty(file.UnknownKeys);
        Assert.Empty(pipe.Loras.Apply([new LoraSelection(file, 1.0)]));

        using var sample = golden.Load("input.sample");
        using var t = golden.Load("input.timestep");
        using var hidden = golden.Load("input.encoder_hidden_states");
        using (var scope = DisposeScope.Enter())
        {
            using var inference = Autograd.InferenceMode();
            var error = TensorAssert.Close(pipe.Unet.Forward(sample, t, hidden), golden.Load("output.sample"), 2e-5, 1e-4, "LoRA'd U-Net output");
            output.WriteLine($"check 9 ({format}): max |error| {error:E2} (atol 2e-5, rtol 1e-4)");
        }
        pipe.Loras.Restore();
        AssertUnchanged(before, pipe);
        using (var scope = DisposeScope.Enter())
        {
            using var inference = Autograd.InferenceMode();
            TensorAssert.Close(pipe.Unet.Forward(sample, t, hidden), golden.Load("debug.output_without_lora"), 2e-5, 1e-4, "U-Net after restore");
        }
        Dispose(before);
    }

    [Theory]
    [InlineData("kohya")]
    [InlineData("peft")]
    public void TextToImageWithTheLoraAtPointEightOnUNetAndTextEncoderMatchesDiffusers(string format)
    {
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/lora_txt2img.safetensors"));
        using var pipe = tiny.Load();
        using var latents = golden.Load("input.latents");
        var request = new GenerationRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 4,
            GuidanceScale = 7.5,
            Width = 64,
            Height = 64,
            Latents = latents,
            Loras = [new LoraRequest(format == "kohya" ? Kohya : Peft, 0.8)],
        };
        using var result = pipe.TextToImage(request, noise: new QueueNoise([]));
        var latentError = TensorAssert.Close(result.Latents, golden.Load("output.latents"), 3e-4, 1e-4, "latents");
        var imageError = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"check 10 ({format}): latents max |error| {latentError:E2} (atol 3e-4), image {imageError:E2} (atol 1e-4)");
        Assert.Empty(result.Warnings);
        var name = Path.GetFileNameWithoutExtension(request.Loras[0].PathOrName);
        Assert.Equal($"{request.Prompt} <lora:{name}:0.8>", result.Parameters[0].Prompt);
        Assert.Equal($"{name}: {pipe.Loras.Active[0].File.ShortHash}", result.Parameters[0].Extra.Single(e => e.Key == "Lora hashes").Value);

        // The same request again merges nothing; one without LoRAs runs the model's own weights (the golden without LoRA).
        var merged = pipe.Loras.Active[0];
        using var again = pipe.TextToImage(request, noise: new QueueNoise([]));
        Assert.Same(merged, pipe.Loras.Active[0]);
        Assert.True(again.Latents.Equal(result.Latents));
        using var plain = pipe.TextToImage(request with { Loras = [] }, noise: new QueueNoise([]));
        Assert.Empty(pipe.Loras.Active);
        TensorAssert.Close(plain.Latents, golden.Load("debug.latents_without_lora"), 3e-4, 1e-4, "latents without LoRA");
    }

    [Fact]
    public void PromptTagsResolveInTheLoraDirectoryAndAreCutFromTheEncodedPrompt()
    {
        using var golden = SafeTensorsFile.Open(SharedData.Fixture("pipeline/goldens/lora_txt2img.safetensors"));
        using var pipe = tiny.Load();
        pipe.Loras.Directory = SharedData.Fixture("pipeline/lora");
        using var latents = golden.Load("input.latents");
        var prompt = "a photograph of an astronaut <lora:sd_tiny_lora_kohya:0.8>riding a horse<lora:missing_one:1>";
        var request = new GenerationRequest
        {
            Prompt = prompt, NegativePrompt = "blurry, low quality", Steps = 4, Width = 64, Height = 64, Latents = latents,
        };
        using var result = pipe.TextToImage(request, noise: new QueueNoise([]));
        // The tag is cut without its spaces, as A1111 does: the encoded text is "a photograph of an astronaut riding a horse".
        TensorAssert.Close(result.Latents, golden.Load("output.latents"), 3e-4, 1e-4, "latents");
        Assert.Equal(prompt, result.Parameters[0].Prompt);
        Assert.Contains(result.Warnings, w => w.Contains("'missing_one' not found", StringComparison.Ordinal));
    }

    [Fact]
    public void TwoLorasAddTheirUpdatesEachWithItsScale()
    {
        using var pipe = tiny.Load();
        var kohya = pipe.Loras.Load(Kohya);
        var peft = pipe.Loras.Load(Peft);
        var weight = pipe.Unet.StateDict()["down_blocks.0.resnets.0.conv1.weight"];
        using var w0 = weight.Clone();
        pipe.Loras.Apply([new LoraSelection(kohya, 1.0)]);
        using var w1 = weight.Clone();
        // The two files describe the same update: 0.25 of one plus 0.75 of the other is the whole update once.
        pipe.Loras.Apply([new LoraSelection(kohya, 0.25), new LoraSelection(peft, 0.75)]);
        TensorAssert.Close(weight, w1, 1e-6, 1e-5, "0.25 + 0.75");
        Assert.Equal(2, pipe.Loras.Active.Count);
        pipe.Loras.Restore();
        Assert.True(weight.Equal(w0));
    }

    [Fact]
    public void RestoreIsExactInBFloat16()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(tiny.Directory, new PipelineOptions { DType = DType.BFloat16 });
        var before = Snapshot(pipe);
        pipe.Loras.Apply([new LoraSelection(pipe.Loras.Load(Kohya), 0.8)]);
        var changed = pipe.Unet.StateDict()["down_blocks.0.attentions.0.proj_in.weight"];
        Assert.False(changed.Equal(before["unet.down_blocks.0.attentions.0.proj_in.weight"]));
        pipe.Loras.Restore();
        AssertUnchanged(before, pipe);
        Dispose(before);
    }

    private static Dictionary<string, Tensor> Snapshot(StableDiffusionPipeline pipe) =>
        pipe.Unet.StateDict().Select(p => ("unet." + p.Key, p.Value))
            .Concat(pipe.TextEncoder.StateDict().Select(p => ("text_encoder." + p.Key, p.Value)))
            .ToDictionary(p => p.Item1, p => p.Item2.Clone().DetachFromDisposeScope());

    internal static void AssertUnchanged(Dictionary<string, Tensor> before, StableDiffusionPipeline pipe)
    {
        var now = pipe.Unet.StateDict().Select(p => ("unet." + p.Key, p.Value)).Concat(pipe.TextEncoder.StateDict().Select(p => ("text_encoder." + p.Key, p.Value)));
        foreach (var (name, tensor) in now) Assert.True(before[name].Equal(tensor), $"{name} differs from the original");
    }

    private static void Dispose(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}

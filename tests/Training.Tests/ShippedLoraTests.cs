using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Evaluation;
using LatentDiffusion.Training.Ldm;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

/// <summary>models/fashion-magenta-lora: the LoRA trained by configs/train/lora-fashion-magenta.json teaches the embedded model "magenta".</summary>
[Collection(LiveTensorCount.Name)]
public class ShippedLoraTests(ITestOutputHelper output)
{
    private static string Model => Path.Combine(SharedData.RepositoryRoot, "models", "fashion-colours");
    private static string Lora => Path.Combine(SharedData.RepositoryRoot, "models", "fashion-magenta-lora", "lora-fashion-magenta.safetensors");

    [Fact]
    public void TheMagentaLoraMakesTheEmbeddedModelFollowTheNewWordAndKeepTheOldOnes()
    {
        Assert.True(new FileInfo(Lora).Length < 2 << 20, "the LoRA file should stay under 2 MB");
        using var pipeline = StableDiffusionPipeline.FromPretrained(Model);
        var palette = TintJudge.FullPalette;
        // the tints of 4 images per prompt (seeds 40…43), few steps: fast, and enough to tell the words apart
        float[]? first = null;
        int[] Tints(string prompt, bool lora)
        {
            var request = new GenerationRequest
            {
                Prompt = prompt, Steps = 12, GuidanceScale = LdmEvaluation.DocumentedGuidanceScale, NumImages = 4, Seed = 40,
                Loras = lora ? [new LoraRequest(Lora)] : [], StrictLoras = true,
            };
            using var scope = DisposeScope.Enter();
            using var result = pipeline.TextToImage(request);
            if (!lora && prompt == "a magenta dress") first ??= result.Pixels.ToArray<float>();
            if (!lora && prompt == "a magenta dress") Assert.Equal(first, result.Pixels.ToArray<float>());
            return TintJudge.Name(Judge.FromPipelineImages(result.Pixels), palette);
        }
        string[] newWord = ["a magenta sneaker", "a magenta dress", "a magenta bag"];
        const int magenta = 8;
        var before = newWord.Sum(p => Tints(p, lora: false).Count(k => k == magenta));
        var after = newWord.Sum(p => Tints(p, lora: true).Count(k => k == magenta));
        output.WriteLine($"magenta images: {before}/12 without the LoRA, {after}/12 with it");
        Assert.True(before <= 1, $"{before}/12 magenta without the LoRA: the model already knew the word");
        Assert.True(after >= 11, $"only {after}/12 magenta with the LoRA");

        // the old words keep their colours with the LoRA merged, and removing it gives the model's own images back bit for bit
        foreach (var (prompt, colour) in new[] { ("a red sneaker", 0), ("a purple bag", 6), ("a blue dress", 5) })
            Assert.Equal([colour, colour, colour, colour], Tints(prompt, lora: true));
        Tints("a magenta dress", lora: false);
    }
}

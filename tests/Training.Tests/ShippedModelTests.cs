using System.Diagnostics;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Evaluation;
using LatentDiffusion.Training.Ldm;
using LatentDiffusion.Training.Vae;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

/// <summary>The embedded text-to-image model (models/fashion-colours) as a user gets it.</summary>
[Collection(LiveTensorCount.Name)]
public class ShippedModelTests(ITestOutputHelper output)
{
    private static string Folder => Path.Combine(SharedData.RepositoryRoot, "models", "fashion-colours");

    [Fact]
    public void FolderIsSmallAndInDiffusersLayout()
    {
        foreach (var part in new[] { "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                     "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
                     "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json", "README.md" })
            Assert.True(File.Exists(Path.Combine(Folder, part)), $"models/fashion-colours/{part} is missing");
        var bytes = Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.True(bytes <= 40L << 20, $"the model takes {bytes / 1e6:F1} MB");
    }

    [Fact]
    public void GeneratesARedSneakerDeterministically()
    {
        using var pipeline = StableDiffusionPipeline.FromPretrained(Folder);
        var request = new GenerationRequest { Prompt = "a red sneaker", GuidanceScale = LdmEvaluation.DocumentedGuidanceScale, Seed = 7 };
        var clock = Stopwatch.StartNew();
        using var first = pipeline.TextToImage(request);
        output.WriteLine($"one image at {request.Steps} steps: {clock.Elapsed.TotalSeconds:F2} s");
        var image = Assert.Single(first.Images);
        Assert.Equal(32, image.Width);
        Assert.Equal(32, image.Height);
        using var again = pipeline.TextToImage(request);
        Assert.Equal(image.Pixels, again.Images[0].Pixels);
        using var other = pipeline.TextToImage(request with { Seed = 8 });
        Assert.NotEqual(image.Pixels, other.Images[0].Pixels);
    }

    [Fact]
    public void TheJudgeSeesTheColourAndClassAskedFor()
    {
        using var pipeline = StableDiffusionPipeline.FromPretrained(Folder);
        using var judge = Judge.LoadFashionColoursJudge(Path.Combine(SharedData.RepositoryRoot, "models", "judges", Judge.FashionColoursJudgeName));
        foreach (var (prompt, cls, colour) in new[] { ("a red sneaker", "sneaker", "red"), ("a blue bag", "bag", "blue") })
        {
            using var result = pipeline.TextToImage(new GenerationRequest
            {
                Prompt = prompt, NumImages = 4, GuidanceScale = LdmEvaluation.DocumentedGuidanceScale, Seed = 1,
            });
            using var images = Judge.FromPipelineImages(result.Pixels);
            var judged = judge.Classify(images);
            var colours = judged.Colours!.Count(k => FashionColours.Colours[(int)k].Name == colour);
            var classes = judged.Classes.Count(c => FashionColours.ClassNames[(int)c] == cls);
            output.WriteLine($"\"{prompt}\": colour right {colours}/4, class right {classes}/4");
            Assert.True(colours >= 3, $"\"{prompt}\": only {colours} of 4 images judged {colour}");
            Assert.True(classes >= 3, $"\"{prompt}\": only {classes} of 4 images judged {cls}");
        }
    }

    [Fact]
    public void TheFolderIsWhatTheCommittedRecipesBuild()
    {
        using var pipeline = StableDiffusionPipeline.FromPretrained(Folder);
        var recipes = Path.Combine(SharedData.RepositoryRoot, "configs", "train");
        var ldm = LdmRecipe.Load(Path.Combine(recipes, "ldm-fashion-colours.json")).Validate();
        var vae = VaeRecipe.Load(Path.Combine(recipes, "vae-fashion-colours.json")).Validate();
        var textConfig = pipeline.TextEncoder.Config;
        using (var unet = new UNet2DConditionModel(ldm.UnetConfig()))
            AssertSameShapes(unet, pipeline.Unet, "unet");
        using (var autoencoder = new AutoencoderKL(vae.ModelConfig()))
            AssertSameShapes(autoencoder, pipeline.Vae, "vae");
        using (var text = new ClipTextModel(ldm.TextEncoderConfig(textConfig.VocabSize, textConfig.BosTokenId!.Value, textConfig.EosTokenId!.Value)))
            AssertSameShapes(text, pipeline.TextEncoder, "text_encoder");
    }

    private static void AssertSameShapes(Torch.NN.Module expected, Torch.NN.Module actual, string part)
    {
        var want = expected.StateDict().Select(p => $"{p.Key} [{string.Join(", ", p.Value.Shape)}]").ToList();
        var have = actual.StateDict().Select(p => $"{p.Key} [{string.Join(", ", p.Value.Shape)}]").ToList();
        Assert.True(want.SequenceEqual(have), $"{part}: the recipe builds {want.Except(have).FirstOrDefault() ?? "fewer tensors"}, the folder has {have.Except(want).FirstOrDefault() ?? "fewer tensors"}");
    }

    /// <summary>
    /// The issue's targets on a quarter of the documented evaluation (2 images per prompt instead of 8, 160 in all,
    /// different seeds), so the test sees the model as `ldm eval prompts` does.
    /// </summary>
    [Fact]
    public void AQuickEvaluationMeetsTheTargets()
    {
        var request = new LdmEvaluationRequest { SamplesPerPrompt = 2, GuidanceScale = LdmEvaluation.DocumentedGuidanceScale };
        var result = LdmEvaluation.Run(Folder, request);
        output.WriteLine($"class {result.ClassAdherence:P1}, colour {result.ColourAdherence:P1}, held-out {result.HeldOutAdherence:P1}, FID {result.Fid:F1}, {result.Seconds:F0} s");
        Assert.Equal(160, result.Samples);
        Assert.Equal((30, 4.0, "DPMSolverMultistepScheduler"), (result.Steps, result.GuidanceScale, result.Sampler));
        Assert.True(result.ClassAdherence >= 0.85, $"class adherence {result.ClassAdherence:P1}");
        Assert.True(result.ColourAdherence >= 0.95, $"colour adherence {result.ColourAdherence:P1}");
        Assert.True(result.HeldOutAdherence >= 0.60, $"held-out adherence {result.HeldOutAdherence:P1}");
    }
}

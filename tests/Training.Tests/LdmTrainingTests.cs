using System.Text.Json.Nodes;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Ldm;
using LatentDiffusion.Training.Recipes;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

public class LdmTrainingTests(ITestOutputHelper output)
{
    private static string Recipe(string name) => Path.Combine(LatentDiffusion.Tests.Common.SharedData.RepositoryRoot, "configs", "train", name);

    /// <summary>A tiny text-to-image model over a tiny (untrained) VAE folder, on 64 Fashion colours items.</summary>
    internal static LdmRecipe Tiny(string vaeDirectory, long maxSteps) => LdmRecipe.Parse($$"""
        {
          "vae": {{System.Text.Json.JsonSerializer.Serialize(vaeDirectory)}},
          "tokenizer": { "vocabulary_size": 700, "model_max_length": 16 },
          "text_encoder": { "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2 },
          "unet": {
            "sample_size": 8, "in_channels": 4, "out_channels": 4,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
            "block_out_channels": [16, 32], "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": 2, "norm_num_groups": 8
          },
          "noise_scheduler": { "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": false },
          "sampling": { "steps": 3, "guidance_scale": 3, "prompts": ["a red sneaker"] },
          "data": { "limit": 64 },
          "training": {
            "max_steps": {{maxSteps}}, "batch_size": 16, "learning_rate": 0.003, "lr_schedule": "constant", "warmup_steps": 0,
            "ema": { "decay": 0.9 }, "checkpoint_every": 0, "sample_every": 0, "log_every": 1, "seed": 2
          }
        }
        """, "tiny-ldm.json");

    internal static string TinyVae()
    {
        var dir = TestDirectory.Create();
        using var generator = new Generator(5);
        using var vae = new AutoencoderKL(new AutoencoderKLConfig
        {
            DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
            UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
            BlockOutChannels = [8, 8, 8],
            NormNumGroups = 4,
            MidBlockAddAttention = false,
            ScalingFactor = 1.0,
        }, generator);
        vae.Save(Path.Combine(dir, "vae"));
        return dir;
    }

    [Fact]
    public void TokenizerLearnedFromTheCaptionsEncodesEveryCaptionInWholeWords()
    {
        var data = FashionColours.Load(train: true);
        var tokenizer = LdmTraining.LearnVocabulary(data, new LdmTokenizerOptions()).CreateTokenizer();
        Assert.Equal(16, tokenizer.ModelMaxLength);
        Assert.True(tokenizer.VocabularySize <= 1000);
        var captions = data.CaptionCorpus().ToList();
        Assert.NotEmpty(captions);
        foreach (var caption in captions.Where(c => c.Length > 0))
        {
            var encoding = tokenizer.Encode(caption);
            Assert.False(encoding.Truncated, $"\"{caption}\" does not fit {tokenizer.ModelMaxLength} tokens");
            Assert.Equal(16, encoding.InputIds.Length);
            var body = encoding.InputIds.Skip(1).Take(encoding.Length - 2).ToArray();
            // No unknown token (unk is eos here) inside, and one token per word: the corpus taught every word whole.
            Assert.DoesNotContain(tokenizer.UnkTokenId, body);
            var words = caption.Split(' ', StringSplitOptions.RemoveEmptyEntries).Sum(w => w.Count(ch => ch == '-') * 2 + 1);
            Assert.True(body.Length <= words, $"\"{caption}\" takes {body.Length} tokens for {words} words");
        }
        // An unknown word is no error: byte-level BPE spells it out.
        Assert.True(tokenizer.Encode("a zebra-striped kimono").Length > 4);
    }

    [Fact]
    public void TrainsAndExportsAPipelineFolderThatGenerates()
    {
        var vaeDir = TinyVae();
        var dir = TestDirectory.Create();
        try
        {
            var recipe = Tiny(Path.Combine(vaeDir, "vae"), 40);
            var result = LdmTraining.Run(recipe, dir);
            output.WriteLine($"tiny LDM: {result.StepsPerSecond:F1} it/s");
            var losses = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToList();
            double early = losses.Take(10).Average(), late = losses.TakeLast(10).Average();
            output.WriteLine($"loss: first ten steps {early:F3}, last ten {late:F3}");
            Assert.True(late < 0.8 * early, $"the loss did not decrease: {early:F3} → {late:F3}");

            var model = result.ModelDirectory!;
            foreach (var part in new[] { "model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json" })
                Assert.True(File.Exists(Path.Combine(model, part)), $"{part} missing from the export");
            using var pipeline = StableDiffusionPipeline.FromPretrained(model);
            Assert.Equal("DPMSolverMultistepScheduler", pipeline.SchedulerConfig.ClassName);
            Assert.Equal(16, pipeline.Tokenizer.ModelMaxLength);
            using var image = pipeline.TextToImage(new GenerationRequest { Prompt = "a red sneaker", Steps = 3, GuidanceScale = 3, Seed = 1 });
            Assert.Equal(32, image.Images[0].Width);
            Assert.Equal(32, image.Images[0].Height);
        }
        finally
        {
            TestDirectory.Delete(dir);
            TestDirectory.Delete(vaeDir);
        }
    }

    [Fact]
    public void ShippedRecipeIsValid()
    {
        var recipe = LdmRecipe.Load(Recipe("ldm-fashion-colours.json")).Validate();
        Assert.Equal(128, recipe.TextEncoderConfig(665, 663, 664).HiddenSize);
        Assert.Equal("DPMSolverMultistepScheduler", recipe.InferenceSchedulerConfig().ClassName);
        Assert.Equal(0.00085, recipe.InferenceSchedulerConfig().BetaStart);
    }

    [Fact]
    public void RecipeErrorsNameTheField()
    {
        var e = Assert.Throws<RecipeException>(() => LdmRecipe.Parse("""{ "latents": "mode" }""").Validate());
        Assert.Contains("latents", e.Message);
        var e2 = Assert.Throws<RecipeException>(() => LdmRecipe.Parse("""{ "tokenizer": { "vocabulary_size": 10 } }""").Validate());
        Assert.Contains("vocabulary_size", e2.Message);
    }
}

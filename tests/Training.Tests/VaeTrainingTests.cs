using System.Text.Json;
using System.Text.Json.Nodes;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Recipes;
using LatentDiffusion.Training.Vae;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Training.Tests;

public class VaeTrainingTests(ITestOutputHelper output)
{
    private static string Recipe(string name) => Path.Combine(LatentDiffusion.Tests.Common.SharedData.RepositoryRoot, "configs", "train", name);

    /// <summary>A tiny AutoencoderKL (8/16 channels, 32×32×3 → 16×16×4) on 64 Fashion colours items.</summary>
    internal static VaeRecipe Tiny(long maxSteps) => VaeRecipe.Parse($$"""
        {
          "model": {
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
            "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 8, "latent_channels": 4,
            "mid_block_add_attention": false
          },
          "loss": { "reconstruction": "l1", "kl_weight": 1e-6 },
          "data": { "limit": 64 },
          "evaluation": { "test_images": 32, "sample_test_images": 16, "scaling_images": 64 },
          "training": {
            "max_steps": {{maxSteps}}, "batch_size": 16, "learning_rate": 0.003, "lr_schedule": "constant", "warmup_steps": 0,
            "ema": null, "checkpoint_every": 0, "sample_every": 0, "sample_count": 4, "log_every": 1, "seed": 1
          }
        }
        """, "tiny-vae.json");

    [Fact]
    public void PsnrOfKnownImages()
    {
        using var zeros = Tensors.Zeros([2, 3, 4, 4]);
        using var shifted = Tensors.Full([2, 3, 4, 4], 0.2);
        // 0.2 on the [−1, 1] scale is 0.1 on [0, 1]: MSE 0.01, PSNR 20 dB.
        Assert.Equal(0.01, VaeEvaluation.MeanSquaredError(zeros, shifted), 9);
        Assert.Equal(20.0, VaeEvaluation.Psnr(zeros, shifted), 6);
        Assert.Equal(double.PositiveInfinity, VaeEvaluation.Psnr(zeros, zeros));
        // Reconstructions are clamped to [−1, 1] first, as a saved image would be.
        using var ones = Tensors.Full([1, 3, 2, 2], 1.0);
        using var over = Tensors.Full([1, 3, 2, 2], 3.0);
        Assert.Equal(double.PositiveInfinity, VaeEvaluation.Psnr(ones, over));
        Assert.Equal(40.0, VaeEvaluation.PsnrOf(1e-4), 9);
        using var wrong = Tensors.Zeros([1, 3, 4, 4]);
        Assert.Throws<ArgumentException>(() => VaeEvaluation.Psnr(zeros, wrong));
    }

    [Fact]
    public void TrainsReportsPsnrAndExportsWithMeasuredScalingFactor()
    {
        var dir = TestDirectory.Create();
        try
        {
            var result = VaeTraining.Run(Tiny(40), dir);
            Assert.False(result.Training.Cancelled);
            var evaluation = Assert.IsType<VaeEvaluationResult>(result.Evaluation);
            output.WriteLine($"tiny VAE: {result.Training.StepsPerSecond:F1} it/s, test PSNR {evaluation.PsnrDb:F2} dB, scaling factor {evaluation.ScalingFactor:G4}");

            var losses = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToList();
            double early = losses.Take(5).Average(), late = losses.TakeLast(5).Average();
            Assert.True(late < 0.6 * early, $"the loss did not decrease: {early:F3} → {late:F3}");
            Assert.True(evaluation.PsnrDb > 12, $"PSNR {evaluation.PsnrDb:F2} dB after 40 steps");
            Assert.True(evaluation.ScalingFactor > 0 && double.IsFinite(evaluation.ScalingFactor));

            using var vae = AutoencoderKL.FromPretrained(result.Training.ModelDirectory!);
            Assert.Equal(evaluation.ScalingFactor, vae.Config.ScalingFactor);
            Assert.Equal(4, vae.Config.LatentChannels);
            var saved = JsonSerializer.Deserialize<VaeEvaluationResult>(File.ReadAllText(Path.Combine(dir, VaeTraining.EvaluationFile)))!;
            Assert.Equal(evaluation.PsnrDb, saved.PsnrDb, 9);
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }

    [Fact]
    public void ShippedRecipeIsValid()
    {
        var recipe = VaeRecipe.Load(Recipe("vae-fashion-colours.json")).Validate();
        var config = recipe.ModelConfig();
        Assert.Equal(4, config.DownscaleFactor);
        Assert.Equal(4, config.LatentChannels);
    }

    [Fact]
    public void RecipeErrorsNameTheField()
    {
        var e = Assert.Throws<RecipeException>(() => VaeRecipe.Parse("""{ "model": { "block_out_channels": [8], "norm_num_groups": 3 } }""").Validate());
        Assert.Contains("norm_num_groups", e.Message);
        e = Assert.Throws<RecipeException>(() => VaeRecipe.Parse("""{ "loss": { "kl_weight": -1 } }""").Validate());
        Assert.Contains("kl_weight", e.Message);
    }
}

using System.Text.Json;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Vae;

/// <summary>The outcome of a VAE run: the training result and, once complete, the test-split evaluation.</summary>
public sealed record VaeTrainingResult(TrainingResult Training, VaeEvaluationResult? Evaluation);

/// <summary>Entry point of VAE training (<c>ldm train vae --config RECIPE --out OUT [--resume]</c>).</summary>
public static class VaeTraining
{
    public const string EvaluationFile = "evaluation.json";

    /// <summary>
    /// Trains in <paramref name="outputDirectory"/>: recipe.json, metrics.jsonl, checkpoints/, samples/
    /// (test images over reconstructions, psnr.jsonl), model/ (the diffusers VAE folder, EMA weights,
    /// measured scaling_factor) and evaluation.json (test-split PSNR through the posterior mean).
    /// </summary>
    public static VaeTrainingResult Run(VaeRecipe recipe, string outputDirectory, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default,
        ProcessGroup? group = null)
    {
        using var task = CreateTask(recipe);
        var trainer = new Trainer(recipe.Training, outputDirectory) { Group = group };
        var result = trainer.RunRecipe(RecipeJson.Serialize(recipe), task, task.TrainData, resume, progress, cancellationToken);
        if (result.Cancelled || result.ModelDirectory is null || !trainer.IsMain) return new VaeTrainingResult(result, null);
        progress?.Report(new TrainingProgress(result.Step, recipe.Training.MaxSteps, result.LastLoss, 0, 0, TimeSpan.Zero, null, "measuring test PSNR"));
        using var vae = AutoencoderKL.FromPretrained(result.ModelDirectory);
        var psnr = VaeEvaluation.TestPsnr(vae, task.TestData, recipe.Evaluation.TestImages, cancellationToken: cancellationToken);
        var evaluation = new VaeEvaluationResult(psnr, Math.Min(recipe.Evaluation.TestImages, task.TestData.Count), vae.Config.ScalingFactor);
        AtomicFile.WriteAllText(Path.Combine(trainer.OutputDirectory, EvaluationFile),
            JsonSerializer.Serialize(evaluation, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return new VaeTrainingResult(result, evaluation);
    }

    /// <summary>The task of <paramref name="recipe"/> with a freshly initialised VAE (seeded by training.seed).</summary>
    public static VaeTask CreateTask(VaeRecipe recipe)
    {
        recipe.Validate();
        var config = recipe.ModelConfig();
        var train = recipe.Data.OpenTrain(recipe.BaseDirectory, recipe.Source);
        var test = recipe.Data.OpenTest(recipe.BaseDirectory, recipe.Source);
        using var generator = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0xAE));
        var vae = new AutoencoderKL(config, generator);
        if (recipe.Discriminator is not { } options)
            return new VaeTask(vae, recipe.Loss, recipe.Evaluation, train, test, Math.Min(recipe.Training.SampleCount, 16));
        // A generator of its own, so that adding the discriminator leaves the autoencoder's initial weights as they were.
        using var discriminatorGenerator = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0xD15C));
        var discriminator = options.Create(config.OutChannels, discriminatorGenerator);
        return new VaeTask(vae, recipe.Loss, recipe.Evaluation, train, test, Math.Min(recipe.Training.SampleCount, 16),
            discriminator, options with { LearningRate = options.LearningRate ?? recipe.Training.LearningRate });
    }
}


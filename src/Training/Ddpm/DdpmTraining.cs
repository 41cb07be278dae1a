using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Ddpm;

/// <summary>Entry point of pixel DDPM training (<c>ldm train ddpm RECIPE OUT [--resume]</c>).</summary>
public static class DdpmTraining
{
    /// <summary>Loads the recipe file, then trains as <see cref="Run(DdpmRecipe, string, bool, IProgress{TrainingProgress}?, CancellationToken)"/>.</summary>
    public static TrainingResult Run(string recipePath, string outputDirectory, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Run(DdpmRecipe.Load(recipePath), outputDirectory, resume, progress, cancellationToken);

    /// <summary>
    /// Builds the model and dataset of <paramref name="recipe"/> and trains in <paramref name="outputDirectory"/>:
    /// recipe.json (the recipe with its model config inlined), metrics.jsonl, checkpoints/, samples/
    /// (PNG grids) and, once complete, model/ (the diffusers pipeline folder, with the EMA weights).
    /// Every problem with the recipe is reported before any training starts.
    /// </summary>
    public static TrainingResult Run(DdpmRecipe recipe, string outputDirectory, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default,
        ProcessGroup? group = null)
    {
        using var task = CreateTask(recipe);
        var dataset = recipe.Data.Open(recipe.BaseDirectory);
        var trainer = new Trainer(recipe.Training, outputDirectory) { Group = group };
        return trainer.RunRecipe(RecipeJson.Serialize(recipe), task, dataset, resume, progress, cancellationToken);
    }

    /// <summary>The task of <paramref name="recipe"/> with a freshly initialised model (seeded by training.seed).</summary>
    public static DdpmTask CreateTask(DdpmRecipe recipe)
    {
        recipe.Validate();
        PixelDenoiser denoiser;
        try
        {
            denoiser = PixelDenoiser.Create(recipe.Model.Type, RecipeJson.Text(recipe.Model.Config!), $"{recipe.Source}: model.config",
                SplitMix64.Mix(recipe.Training.Seed, 0x1417));
        }
        catch (ConfigException e)
        {
            throw new RecipeException(e.Message.StartsWith(recipe.Source, StringComparison.Ordinal) ? e.Message : $"{recipe.Source}: model.config: {e.Message}", e);
        }
        try
        {
            recipe.Validate(denoiser);
            return new DdpmTask(denoiser, recipe.SchedulerConfig(), recipe.Training.Loss, recipe.Data.ImageSize,
                recipe.Training.SampleCount, recipe.Sampling.InferenceSteps);
        }
        catch
        {
            denoiser.Dispose();
            throw;
        }
    }
}

using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Ldm;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Lora;

/// <summary>Entry point of LoRA fine-tuning (<c>ldm train lora --config RECIPE --out OUT [--resume]</c>).</summary>
public static class LoraTraining
{
    /// <summary>
    /// Trains in <paramref name="outputDirectory"/>: recipe.json, metrics.jsonl, checkpoints/, samples/ and, once complete,
    /// model/NAME.safetensors (kohya / AUTOMATIC1111 keys; NAME the recipe's file name), which <c>--lora</c> loads.
    /// </summary>
    public static TrainingResult Run(LoraRecipe recipe, string outputDirectory, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default, ProcessGroup? group = null)
    {
        recipe.Validate();
        var dataset = recipe.OpenDataset();
        using var task = CreateTask(recipe);
        return new Trainer(recipe.Training, outputDirectory) { Group = group }.RunRecipe(RecipeJson.Serialize(recipe), task, dataset, resume, progress, cancellationToken);
    }

    /// <summary>The frozen base model on the training device and fresh adapters (seeded by training.seed).</summary>
    public static LoraTask CreateTask(LoraRecipe recipe)
    {
        recipe.Validate();
        var pipeline = StableDiffusionPipeline.FromPretrained(recipe.ModelPath, new PipelineOptions { Device = Device.Parse(recipe.Training.Device) });
        try
        {
            var components = new List<(string, Torch.NN.Module, string[])> { ("unet", pipeline.Unet, LoraNetwork.UnetTargets) };
            if (recipe.Network.TrainTextEncoder) components.Add(("text_encoder", pipeline.TextEncoder, LoraNetwork.TextEncoderTargets));
            using var generator = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0x10AA));
            var network = new LoraNetwork(components, recipe.Network.Rank, recipe.Network.Alpha ?? recipe.Network.Rank, generator);
            var name = Path.GetFileNameWithoutExtension(recipe.Source);
            var loss = new LdmTask(new TextToImageModel(pipeline.Unet, pipeline.TextEncoder), pipeline.Vae, pipeline.Tokenizer,
                recipe.NoiseSchedulerConfig(pipeline.SchedulerConfig), pipeline.SchedulerConfig, recipe.Sampling, recipe.Latents == "sample", name);
            return new LoraTask(pipeline, network, loss, name);
        }
        catch
        {
            pipeline.Dispose();
            throw;
        }
    }
}

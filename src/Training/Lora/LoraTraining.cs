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
        using var task = CreateTask(recipe);
        var dataset = recipe.OpenDataset();
        return new Trainer(recipe.Training, outputDirectory) { Group = group }.RunRecipe(RecipeJson.Serialize(recipe), task, dataset, resume, progress, cancellationToken);
    }

    /// <summary>The frozen base model on the training device and fresh adapters (seeded by training.seed).</summary>
    public static LoraTask CreateTask(LoraRecipe recipe)
    {
        recipe.Validate();
        var pipeline = StableDiffusionPipeline.FromPretrained(recipe.ModelPath, new PipelineOptions { Device = Device.Parse(recipe.Training.Device) });
        try
        {
            EnsureBucketsFit(recipe, pipeline);
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

    /// <summary>
    /// Bucket sides must be multiples of the VAE's factor × 2^(the U-Net's downsamplings): the U-Net halves the latents that
    /// many times, and a side it cannot halve evenly only runs through diffusers' forward_upsample_size path, whose
    /// upsampling no longer lines up with the skip connections (kohya warns likewise: SDXL needs steps divisible by 32).
    /// Every bucket side is a multiple of bucket_reso_steps, so that is the setting to hold to it.
    /// </summary>
    private static void EnsureBucketsFit(LoraRecipe recipe, StableDiffusionPipeline pipeline)
    {
        if (recipe.Data.Buckets is not { } buckets) return;
        int vae = pipeline.VaeScaleFactor, halvings = pipeline.Unet.NumUpsamplers, multiple = vae << halvings;
        if (buckets.Steps % multiple != 0)
            throw new RecipeException($"{recipe.Source}: 'data.bucket_reso_steps' must be a multiple of {multiple} for this model " +
                $"(the VAE's factor {vae} × 2^{halvings}, the U-Net's downsamplings; got {buckets.Steps})");
    }
}

using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Ldm;

/// <summary>Entry point of text-to-image training (<c>ldm train ldm --config RECIPE --out OUT [--resume]</c>).</summary>
public static class LdmTraining
{
    /// <summary>
    /// Learns the tokenizer, builds the text encoder and U-Net, loads the frozen VAE and trains in
    /// <paramref name="outputDirectory"/>: recipe.json, metrics.jsonl, checkpoints/, samples/ (one row
    /// of four images per sample prompt) and, once complete, model/ (the diffusers StableDiffusionPipeline
    /// folder with the EMA weights).
    /// </summary>
    public static TrainingResult Run(LdmRecipe recipe, string outputDirectory, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default,
        ProcessGroup? group = null)
    {
        var dataset = recipe.Validate().Data.OpenTrain(recipe.BaseDirectory, recipe.Source);
        using var task = CreateTask(recipe, dataset.Data);
        var trainer = new Trainer(recipe.Training, outputDirectory) { Group = group };
        return trainer.RunRecipe(RecipeJson.Serialize(recipe), task, dataset, resume, progress, cancellationToken);
    }

    /// <summary>The BPE vocabulary learned from every caption <paramref name="data"/> can produce.</summary>
    public static BpeVocabulary LearnVocabulary(FashionColours data, LdmTokenizerOptions options) =>
        new BpeTrainer(new BpeTrainerOptions
        {
            VocabularySize = options.VocabularySize,
            Config = new ClipTokenizerConfig { ModelMaxLength = options.ModelMaxLength },
        }).Train(data.CaptionCorpus());

    /// <summary>The task of <paramref name="recipe"/>: learned tokenizer, fresh text encoder and U-Net (seeded by training.seed), the recipe's VAE.</summary>
    public static LdmTask CreateTask(LdmRecipe recipe, FashionColours data)
    {
        recipe.Validate();
        var vocabulary = LearnVocabulary(data, recipe.Tokenizer);
        var tokenizer = vocabulary.CreateTokenizer();
        var textConfig = recipe.TextEncoderConfig(tokenizer.Vocabulary.Values.Max() + 1, tokenizer.BosTokenId, tokenizer.EosTokenId);
        var unetConfig = recipe.UnetConfig();
        if (!Directory.Exists(recipe.VaeDirectory))
            throw new RecipeException($"{recipe.Source}: 'vae' {recipe.VaeDirectory} does not exist (train the VAE first: ldm train vae)");
        AutoencoderKL vae;
        try
        {
            vae = AutoencoderKL.FromPretrained(recipe.VaeDirectory, Device.Parse(recipe.Training.Device));
        }
        catch (ConfigException e)
        {
            throw new RecipeException($"{recipe.Source}: 'vae': {e.Message}", e);
        }
        if (vae.Config.LatentChannels != unetConfig.InChannels)
        {
            vae.Dispose();
            throw new RecipeException($"{recipe.Source}: the VAE has {vae.Config.LatentChannels} latent channels but unet in_channels is {unetConfig.InChannels}");
        }
        using var generator = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0x7E47));
        var textEncoder = new ClipTextModel(textConfig, generator);
        // A generator of the U-Net's own: the same stream the global generator gave when seeded with this value.
        using var unetGenerator = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0x0E7));
        var unet = new UNet2DConditionModel(unetConfig, unetGenerator);
        var name = Path.GetFileNameWithoutExtension(recipe.Source);
        return new LdmTask(new TextToImageModel(unet, textEncoder), vae, tokenizer, recipe.NoiseSchedulerConfig(),
            recipe.InferenceSchedulerConfig(), recipe.Sampling, recipe.Latents == "sample", name);
    }
}

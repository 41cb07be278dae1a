using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// Saving as a diffusers folder (what `ldm convert` writes and what diffusers' StableDiffusionPipeline loads).
public sealed partial class StableDiffusionPipeline
{
    /// <summary>
    /// Writes model_index.json, unet/, vae/, text_encoder/, tokenizer/ and scheduler/ in diffusers'
    /// layout. The folder is assembled beside <paramref name="directory"/> and renamed into place only
    /// when complete; an existing folder is not overwritten unless <paramref name="overwrite"/>.
    /// </summary>
    public void Save(string directory, bool overwrite = false) => AtomicFolder.Write(directory, overwrite, staging =>
    {
        using (Autograd.NoGrad())
        {
            Unet.Save(Path.Combine(staging, "unet"));
            Vae.Save(Path.Combine(staging, "vae"));
            TextEncoder.Save(Path.Combine(staging, "text_encoder"));
        }
        SaveTokenizerAndScheduler(staging);
        ModelIndex.Save(staging, "StableDiffusionPipeline",
        [
            ("scheduler", "diffusers", SchedulerConfig.ClassName),
            ("text_encoder", "transformers", "CLIPTextModel"),
            ("tokenizer", "transformers", "CLIPTokenizer"),
            ("unet", "diffusers", "UNet2DConditionModel"),
            ("vae", "diffusers", "AutoencoderKL"),
        ]);
    });

    /// <summary>tokenizer/ and scheduler/ of a diffusers folder (whatever engine writes the networks).</summary>
    public void SaveTokenizerAndScheduler(string directory)
    {
        BpeVocabulary.From(Tokenizer).Save(Path.Combine(directory, "tokenizer"));
        Directory.CreateDirectory(Path.Combine(directory, "scheduler"));
        AtomicFile.WriteAllText(Path.Combine(directory, "scheduler", "scheduler_config.json"), SchedulerConfig.ToJsonString() + "\n");
    }
}

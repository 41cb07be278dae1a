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
    public void Save(string directory, bool overwrite = false)
    {
        var target = Path.GetFullPath(directory);
        if (Directory.Exists(target) && !overwrite)
            throw new IOException($"{target}: already exists (choose another folder or remove it)");
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(staging);
            using (Autograd.NoGrad())
            {
                Unet.Save(Path.Combine(staging, "unet"));
                Vae.Save(Path.Combine(staging, "vae"));
                TextEncoder.Save(Path.Combine(staging, "text_encoder"));
            }
            BpeVocabulary.From(Tokenizer).Save(Path.Combine(staging, "tokenizer"));
            Directory.CreateDirectory(Path.Combine(staging, "scheduler"));
            AtomicFile.WriteAllText(Path.Combine(staging, "scheduler", "scheduler_config.json"), SchedulerConfig.ToJsonString() + "\n");
            ModelIndex.Save(staging, IsInpaintingModel ? "StableDiffusionInpaintPipeline" : "StableDiffusionPipeline",
            [
                ("scheduler", "diffusers", SchedulerConfig.ClassName),
                ("text_encoder", "transformers", "CLIPTextModel"),
                ("tokenizer", "transformers", "CLIPTokenizer"),
                ("unet", "diffusers", "UNet2DConditionModel"),
                ("vae", "diffusers", "AutoencoderKL"),
            ]);
            if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
            Directory.Move(staging, target);
        }
        catch
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            throw;
        }
    }
}

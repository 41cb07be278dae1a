using LatentDiffusion.Pipeline.Engines;
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
        }
        if (Xl is not null)
        {
            SaveTokenizerAndScheduler(staging);
            SaveXlParts(staging);
            return;
        }
        using (Autograd.NoGrad()) TextEncoder.Save(Path.Combine(staging, "text_encoder"));
        SaveTokenizerAndScheduler(staging);
        ModelIndex.Save(staging, IsInpaintingModel ? "StableDiffusionInpaintPipeline" : "StableDiffusionPipeline",
        [
            ("scheduler", "diffusers", SchedulerConfig.ClassName),
            ("text_encoder", "transformers", "CLIPTextModel"),
            ("tokenizer", "transformers", "CLIPTokenizer"),
            ("unet", "diffusers", "UNet2DConditionModel"),
            ("vae", "diffusers", "AutoencoderKL"),
        ]);
    });

    /// <summary>
    /// tokenizer/ and scheduler/ of a diffusers folder (whatever engine writes the networks); SDXL's tokenizer_2/ too (a refiner's
    /// one tokenizer is its tokenizer_2, as stabilityai/stable-diffusion-xl-refiner-1.0 ships it).
    /// </summary>
    public void SaveTokenizerAndScheduler(string directory)
    {
        SaveScheduler(directory);
        var refiner = Xl is not null && Models.TextEncoder2 is null;
        if (Xl is not null) BpeVocabulary.From(refiner ? Tokenizer : Tokenizer2!).Save(Path.Combine(directory, "tokenizer_2"));
        if (!refiner) BpeVocabulary.From(Tokenizer).Save(Path.Combine(directory, "tokenizer"));
    }

    /// <summary>SDXL's model_index.json settings as diffusers stores them (the refiner's pipeline also registers requires_aesthetics_score).</summary>
    public IReadOnlyList<(string Name, bool Value)> XlIndexFlags => Xl is null ? []
        : IsRefiner
            ? [("force_zeros_for_empty_prompt", Xl.ForceZerosForEmptyPrompt), ("requires_aesthetics_score", true)]
            : [("force_zeros_for_empty_prompt", Xl.ForceZerosForEmptyPrompt)];

    private void SaveScheduler(string directory)
    {
        Directory.CreateDirectory(Path.Combine(directory, "scheduler"));
        AtomicFile.WriteAllText(Path.Combine(directory, "scheduler", "scheduler_config.json"), SchedulerConfig.ToJsonString() + "\n");
    }

    // SDXL: both encoders (text_encoder_2 a CLIPTextModelWithProjection) and model_index.json with its settings; a refiner's
    // one encoder is its text_encoder_2, as stabilityai/stable-diffusion-xl-refiner-1.0 ships it.
    private void SaveXlParts(string staging)
    {
        var refiner = Models.TextEncoder2 is null;
        var second = refiner ? TextEncoder : ((TorchTextEncoder)Models.TextEncoder2!).Module;
        using (Autograd.NoGrad())
        {
            second.Save(Path.Combine(staging, "text_encoder_2"));
            if (!refiner) TextEncoder.Save(Path.Combine(staging, "text_encoder"));
        }
        var components = new List<(string, string, string)>
        {
            ("scheduler", "diffusers", SchedulerConfig.ClassName),
            ("text_encoder_2", "transformers", "CLIPTextModelWithProjection"),
            ("tokenizer_2", "transformers", "CLIPTokenizer"),
            ("unet", "diffusers", "UNet2DConditionModel"),
            ("vae", "diffusers", "AutoencoderKL"),
        };
        if (!refiner) components.AddRange([("text_encoder", "transformers", "CLIPTextModel"), ("tokenizer", "transformers", "CLIPTokenizer")]);
        ModelIndex.Save(staging, IsRefiner ? "StableDiffusionXLImg2ImgPipeline" : "StableDiffusionXLPipeline", components,
            absent: refiner ? ["text_encoder", "tokenizer"] : null, flags: XlIndexFlags);
    }
}

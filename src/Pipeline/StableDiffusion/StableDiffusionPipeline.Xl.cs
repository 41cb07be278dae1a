using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// Stable Diffusion XL (Podell et al. 2023): two text encoders, pooled-text and size/crop micro-conditioning, the refiner's
// aesthetic-score conditioning and the base → refiner hand-off, through the one denoising loop (diffusers'
// StableDiffusionXLPipeline and StableDiffusionXLImg2ImgPipeline).
public sealed partial class StableDiffusionPipeline
{
    /// <summary>SDXL's second tokenizer (tokenizer_2/, padding with "!"); null for SD 1.x/2.x and for a refiner, whose one tokenizer is <see cref="Tokenizer"/>.</summary>
    public ClipTokenizer? Tokenizer2 { get; private set; }

    /// <summary>The SDXL settings; null for a Stable Diffusion 1.x/2.x pipeline.</summary>
    public XlSettings? Xl { get; }

    /// <summary>True for an SDXL refiner: it conditions on aesthetic scores and continues another model's latents.</summary>
    public bool IsRefiner => Xl?.RequiresAestheticsScore == true;

    /// <summary>
    /// An SDXL pipeline over libtorch modules. The base has both text encoders; a refiner only the second one
    /// (<paramref name="textEncoder"/> = its CLIPTextModelWithProjection, <paramref name="tokenizer"/> = its tokenizer_2,
    /// <paramref name="tokenizer2"/> and <paramref name="textEncoder2"/> null).
    /// </summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTextModel textEncoder, ClipTokenizer? tokenizer2, ClipTextModelWithProjection? textEncoder2,
        UNet2DConditionModel unet, AutoencoderKL vae, XlSettings xl, SchedulerConfig schedulerConfig, string modelName, PipelineOptions? options = null)
        : this(tokenizer, tokenizer2, TorchModels(textEncoder, unet, vae, options ??= new PipelineOptions(), textEncoder2), xl, schedulerConfig, modelName, options)
    {
    }

    private static XlPromptEncoder XlConditioner(ClipTokenizer tokenizer, ClipTokenizer? tokenizer2, PipelineModels models, XlSettings xl)
    {
        if ((tokenizer2 is null) != (models.TextEncoder2 is null))
            throw new ArgumentException("an SDXL pipeline's second tokenizer and second text encoder come together");
        return new XlPromptEncoder(models.TextEncoder2 is null
            ? [(tokenizer, models.TextEncoder)]
            : [(tokenizer, models.TextEncoder), (tokenizer2!, models.TextEncoder2)], xl);
    }

    /// <summary>
    /// The refiner's half of SDXL's base → refiner hand-off (diffusers' StableDiffusionXLImg2ImgPipeline with
    /// denoising_start): continues <paramref name="latents"/> (the base's output with denoising_end, undecoded, noisy)
    /// from <paramref name="denoisingStart"/> of the schedule without adding noise. The size is the latents'.
    /// </summary>
    public GenerationResult Refine(GenerationRequest request, Tensor latents, double denoisingStart, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default, INoiseSource? noise = null, CancellationToken interrupt = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (latents.Dim != 4 || latents.Size(0) != request.NumImages)
            throw new ArgumentException($"the latents to refine are [{string.Join(", ", latents.Shape)}]; they must be [{request.NumImages}, C, h, w] (one per image)");
        var f = VaeScaleFactor;
        var r = request with
        {
            Latents = latents,
            Width = (int)latents.Size(3) * f,
            Height = (int)latents.Size(2) * f,
            Xl = (request.Xl ?? new XlOptions()) with { DenoisingStart = denoisingStart, DenoisingEnd = null },
        };
        Validate(r);
        return Generate(r, null, 1.0, progress, cancellation, noise, interrupt: interrupt);
    }

    // The request's SDXL options on a model without them, or a hand-off this model cannot take, are refused before any work.
    private void ValidateXl(GenerationRequest r)
    {
        if (r.Xl is null) return;
        if (Xl is null)
            throw new ArgumentException($"{ModelName} is not an SDXL model: the SDXL options (second prompts, size conditioning, denoising start/end) do not apply");
        if (r.Xl.DenoisingStart is not null && r.Latents is null)
            throw new ArgumentException("denoising start continues given latents (a base model's output with denoising end): pass them");
    }

    /// <summary>
    /// diffusers' denoising_end (StableDiffusionXLPipeline: keep the timesteps ≥ round(T − end·T)) and denoising_start
    /// (StableDiffusionXLImg2ImgPipeline.get_timesteps: the last n timesteps below round(T − start·T), n made odd for a
    /// second-order scheduler so that a step is not cut between its two evaluations), T = num_train_timesteps.
    /// </summary>
    private static (int Start, List<double> Timesteps) DenoisingWindow(GenerationRequest r, IScheduler scheduler, int start, List<double> timesteps)
    {
        if (r.Xl is not { } x) return (start, timesteps);
        var trained = scheduler.Config.NumTrainTimesteps;
        if (x.DenoisingStart is { } from)
        {
            var all = scheduler.Timesteps;
            var cutoff = (int)Math.Round(trained - from * trained, MidpointRounding.ToEven);
            var count = all.Count(t => t < cutoff);
            if (scheduler.Order == 2 && count % 2 == 0) count++;
            count = Math.Min(count, all.Count);
            start = all.Count - count;
            timesteps = all.Skip(start).ToList();
        }
        if (x.DenoisingEnd is { } end)
        {
            var cutoff = (int)Math.Round(trained - end * trained, MidpointRounding.ToEven);
            timesteps = timesteps.TakeWhile(t => t >= cutoff).ToList();
        }
        if (timesteps.Count == 0)
            throw new ArgumentOutOfRangeException(nameof(r.Xl), $"the denoising window (start {x.DenoisingStart ?? 0}, end {x.DenoisingEnd ?? 1}) " +
                $"with {r.Steps} steps leaves no denoising step; move the switch or raise the steps");
        return (start, timesteps);
    }
}

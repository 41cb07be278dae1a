using System.Diagnostics.CodeAnalysis;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>What to generate. Defaults are diffusers' where it has one.</summary>
public partial record GenerationRequest
{
    public required string Prompt { get; init; }

    /// <summary>What to steer away from; empty means the unconditional (empty) prompt.</summary>
    public string NegativePrompt { get; init; } = "";

    public int Steps { get; init; } = 30;

    /// <summary>Classifier-free guidance scale; guidance is off (one U-Net pass per step) when ≤ 1.</summary>
    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>Rescales the guided prediction's standard deviation (Lin et al. 2023, §3.4); 0 = off.</summary>
    public double GuidanceRescale { get; init; }

    /// <summary>A sampler name ("euler_a", "dpmpp_2m_karras", …); null keeps the model's own scheduler.</summary>
    public string? Sampler { get; init; }

    /// <summary>
    /// A schedule type ("karras", "exponential", "SGM Uniform", …; <see cref="Schedulers.ScheduleTypes"/>) for the sampler,
    /// or for the model's own scheduler when <see cref="Sampler"/> is null; null keeps the sampler's own schedule.
    /// </summary>
    public string? Schedule { get; init; }

    public ulong Seed { get; init; }

    /// <summary>
    /// Output size in pixels, multiples of the pipeline's VAE scale factor (8 for Stable Diffusion; checked by
    /// the pipeline, which knows its VAE); null takes the U-Net's sample_size × that factor.
    /// </summary>
    public int? Width { get; init; }
    public int? Height { get; init; }

    /// <summary>Images to make; image i uses seed + i.</summary>
    public int NumImages { get; init; } = 1;

    /// <summary>
    /// Images denoised together (AUTOMATIC1111's batch size; <see cref="NumImages"/> is then batch size × batch count):
    /// the images run in chunks of this many, one chunk after another. Null: the largest chunk whose memory estimate
    /// fits in half the available memory, at most 8 on a CPU (16 on CUDA). Chunking does not change the images.
    /// </summary>
    public int? BatchSize { get; init; }

    /// <summary>AUTOMATIC1111's "Clip skip": 1 uses the last text-encoder layer, 2 the penultimate, …</summary>
    public int ClipSkip { get; init; } = 1;

    /// <summary>η of the samplers whose step uses it (DDIM; TCD's γ; 0 = deterministic); ignored by the others (<see cref="Schedulers.IScheduler.UsesEta"/>).</summary>
    public double Eta { get; init; }

    /// <summary>Initial latents [n, C, h/f, w/f] (f the VAE scale factor) instead of drawing them (they are scaled by the scheduler's init_noise_sigma).</summary>
    public Tensor? Latents { get; init; }

    /// <summary>Split prompts over 75 tokens into chunks (AUTOMATIC1111) instead of truncating them.</summary>
    public bool LongPrompts { get; init; } = true;

    /// <summary>Parse AUTOMATIC1111 emphasis "(word:1.3)", "(word)", "[word]".</summary>
    public bool PromptWeighting { get; init; } = true;

    /// <summary>
    /// Every this many steps (and at the last), the progress report carries a preview of the first image:
    /// the sampler's current estimate of the clean latents through the pipeline's preview decoder. 0 = none.
    /// </summary>
    public int PreviewEvery { get; init; }

    /// <summary>
    /// diffusers' output_type="latent": the VAE does not run; the result carries the final latents (and the parameters), no
    /// images, and empty pixels [0, H, W, 3]. For SDXL's base before a refiner, whose noisy latents are only handed on.
    /// </summary>
    public bool LatentOutput { get; init; }

    /// <summary>
    /// LoRAs merged into the model for this request, besides the prompt's AUTOMATIC1111 tags <c>&lt;lora:NAME:0.8&gt;</c>
    /// (names looked up in the pipeline's <see cref="Adapters.LoraAdapters.Directory"/>).
    /// </summary>
    public IReadOnlyList<Adapters.LoraRequest> Loras { get; init; } = [];

    /// <summary>Refuse a LoRA with keys that map to no layer of the model instead of warning and ignoring them.</summary>
    public bool StrictLoras { get; init; }

    /// <summary>SDXL's options (second prompts, micro-conditioning, refiner hand-off); null = diffusers' defaults.</summary>
    public XlOptions? Xl { get; init; }

    /// <summary>Throws for settings no model can run; the pipeline adds what depends on the model (size multiples, sampler name).</summary>
    public virtual void Validate()
    {
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "steps must be at least 1");
        // Written as !(in range) so that NaN, for which every comparison is false, is refused too.
        if (!(GuidanceScale >= 0 && GuidanceScale <= 100)) throw new ArgumentOutOfRangeException(nameof(GuidanceScale), GuidanceScale, "guidance scale must be in [0, 100]");
        if (!(GuidanceRescale >= 0 && GuidanceRescale <= 1)) throw new ArgumentOutOfRangeException(nameof(GuidanceRescale), GuidanceRescale, "guidance rescale must be in [0, 1]");
        if (NumImages < 1) throw new ArgumentOutOfRangeException(nameof(NumImages), NumImages, "the number of images must be at least 1");
        if (BatchSize is < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "batch size must be at least 1");
        if (ClipSkip < 1) throw new ArgumentOutOfRangeException(nameof(ClipSkip), ClipSkip, "clip skip must be between 1 and the text encoder's layer count");
        if (!(Eta >= 0 && Eta <= 1)) throw new ArgumentOutOfRangeException(nameof(Eta), Eta, "eta must be in [0, 1]");
        if (PreviewEvery < 0) throw new ArgumentOutOfRangeException(nameof(PreviewEvery), PreviewEvery, "preview interval must be ≥ 0 (0 = no previews)");
        if (Width is <= 0) throw new ArgumentOutOfRangeException(nameof(Width), Width, "width must be positive");
        if (Height is <= 0) throw new ArgumentOutOfRangeException(nameof(Height), Height, "height must be positive");
        ValidateControlNets();
        Xl?.Validate();
    }
}

/// <summary>Image-to-image: start from a reference image noised to <see cref="Strength"/>.</summary>
public sealed record ImageToImageRequest : GenerationRequest
{
    public ImageToImageRequest()
    {
    }

    /// <summary>Image-to-image from <paramref name="initImage"/> with every setting of <paramref name="request"/> (its Latents are not used).</summary>
    [SetsRequiredMembers]
    public ImageToImageRequest(GenerationRequest request, RgbImage initImage) : base(request)
    {
        InitImage = initImage;
    }

    /// <summary>
    /// The reference image. It is resized (Lanczos) and center-cropped to the output size when Width/Height
    /// are given; otherwise its own size rounded down to a multiple of the VAE scale factor is used.
    /// </summary>
    public required RgbImage InitImage { get; init; }

    /// <summary>How much to change the image: 1 ignores it, values near 0 keep it (diffusers' strength).</summary>
    public double Strength { get; init; } = 0.8;

    /// <summary>Also checks <see cref="Strength"/>; an override, so a call through a <see cref="GenerationRequest"/> reference checks it too.</summary>
    public override void Validate()
    {
        base.Validate();
        if (!(Strength > 0 && Strength <= 1)) throw new ArgumentOutOfRangeException(nameof(Strength), Strength, "strength must be in (0, 1]");
    }
}

/// <summary>Progress of one generation: reported after every denoising step; <paramref name="Preview"/> as <see cref="GenerationRequest.PreviewEvery"/> asks.</summary>
public sealed record GenerationProgress(int Step, int TotalSteps, double Timestep, TimeSpan Elapsed, RgbImage? Preview = null);

/// <summary>
/// The images (one per requested image) with their parameters, the final latents before decoding
/// (diffusers' output_type "latent"), and the decoded pixels as float32 [n, H, W, 3] in [0, 1]
/// (diffusers' output_type "np"), before quantisation to 8 bits.
/// </summary>
public sealed record GenerationResult(IReadOnlyList<RgbImage> Images, IReadOnlyList<GenerationParameters> Parameters, Tensor Latents, Tensor Pixels) : IDisposable
{
    /// <summary>What the run ignored and the caller should know (LoRA keys that map to nothing, unknown prompt tags or embeddings).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>
    /// The run was interrupted (the interrupt token of TextToImage and the others): the images are decoded from the clean-latents
    /// prediction of the step that was running, and chunks not started are missing.
    /// </summary>
    public bool Interrupted { get; init; }

    public void Dispose()
    {
        Latents.Dispose();
        Pixels.Dispose();
    }
}

using System.Diagnostics;
using LatentDiffusion.Blocks;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion.Preview;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>
/// Stable Diffusion text-to-image and image-to-image: CLIP text encoder → U-Net denoising loop in
/// the VAE's latent space, with classifier-free guidance → VAE decode. Loads diffusers folders and
/// single-file checkpoints; the numbers follow diffusers' StableDiffusion(Img2Img)Pipeline.
/// </summary>
public sealed partial class StableDiffusionPipeline : IDisposable
{
    /// <summary>The tokenizer; replaced (never changed) when an embedding adds tokens.</summary>
    public ClipTokenizer Tokenizer { get; private set; }

    /// <summary>The networks, engine-neutral: the denoising loop runs them through these interfaces only.</summary>
    public PipelineModels Models { get; }

    /// <summary>The libtorch text encoder (adapters, saving and training need the module itself).</summary>
    public ClipTextModel TextEncoder => Models.TextEncoder is TorchTextEncoder t ? t.Module : throw NotTorch("text encoder");
    /// <summary>The libtorch U-Net.</summary>
    public UNet2DConditionModel Unet => Models.Denoiser is TorchDenoiser d ? d.Module : throw NotTorch("U-Net");
    /// <summary>The libtorch VAE.</summary>
    public AutoencoderKL Vae => Models.Autoencoder is TorchAutoencoder a ? a.Module : throw NotTorch("VAE");

    /// <summary>The default scheduler (a request's Sampler overrides it); diffusers' pipe.scheduler.</summary>
    public SchedulerConfig SchedulerConfig { get; set; }

    /// <summary>Name recorded in the PNG parameters (the folder or file name).</summary>
    public string ModelName { get; }

    public PipelineOptions Options { get; }

    private IPromptConditioner prompts;

    /// <summary>A pipeline over libtorch modules, moved to the options' device and dtype.</summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae,
        SchedulerConfig schedulerConfig, string modelName, PipelineOptions? options = null)
        : this(tokenizer, TorchModels(textEncoder, unet, vae, options ??= new PipelineOptions()), schedulerConfig, modelName, options)
    {
    }

    /// <summary>A pipeline over any engine's models (already on their device).</summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, PipelineModels models, SchedulerConfig schedulerConfig, string modelName, PipelineOptions? options = null)
        : this(tokenizer, null, models, null, schedulerConfig, modelName, options)
    {
    }

    /// <summary>
    /// A pipeline over any engine's models; with <paramref name="xl"/> an SDXL pipeline, which conditions through both text
    /// encoders (a refiner: only Models.TextEncoder, with <paramref name="tokenizer2"/> null).
    /// </summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTokenizer? tokenizer2, PipelineModels models, XlSettings? xl,
        SchedulerConfig schedulerConfig, string modelName, PipelineOptions? options = null)
    {
        Tokenizer = tokenizer;
        Tokenizer2 = tokenizer2;
        Models = models;
        Xl = xl;
        SchedulerConfig = schedulerConfig;
        ModelName = modelName;
        Options = options ?? new PipelineOptions();
        prompts = xl is null ? new PromptEncoder(tokenizer, models.TextEncoder) : XlConditioner(tokenizer, tokenizer2, models, xl);
    }

    private static PipelineModels TorchModels(ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae, PipelineOptions o,
        ClipTextModel? textEncoder2 = null)
    {
        unet.Eval();
        textEncoder.Eval();
        textEncoder2?.Eval();
        vae.Eval();
        var vaeDType = vae.Config.ForceUpcast ? DType.Float32 : o.DType;
        if (o.Device != Device.CPU || o.DType != DType.Float32)
        {
            unet.To(o.Device, o.DType);
            textEncoder.To(o.Device, o.DType);
            textEncoder2?.To(o.Device, o.DType);
            vae.To(o.Device, vaeDType);
        }
        vae.UseTiling = o.VaeTiling;
        vae.UseSlicing = o.VaeSlicing;
        if (o.AttentionSliceSize is int slice) unet.SetAttentionSlice(slice);
        return new PipelineModels(new TorchTextEncoder(textEncoder), new TorchDenoiser(unet), new TorchAutoencoder(vae, vaeDType),
            textEncoder2 is null ? null : new TorchTextEncoder(textEncoder2));
    }

    private InvalidOperationException NotTorch(string part) =>
        new($"{ModelName}: this pipeline's {part} does not run on libtorch ({Models.Denoiser.GetType().Name}); this operation needs the libtorch model");

    /// <summary>
    /// The VAE's spatial down-sampling factor (diffusers' vae_scale_factor: 8 for Stable Diffusion, 4 for the
    /// embedded model): image sizes are multiples of it and latents are the image size divided by it.
    /// </summary>
    public int VaeScaleFactor => Models.Autoencoder.DownscaleFactor;

    /// <summary>
    /// Text to image. <paramref name="cancellation"/> stops the work and throws; <paramref name="interrupt"/> (AUTOMATIC1111's
    /// Interrupt, diffusers' pipe.interrupt) ends it early with a result: after the step that is running, the images are
    /// decoded from that step's prediction of the clean latents (A1111's last_latent), the chunks not started are left out,
    /// and <see cref="GenerationResult.Interrupted"/> is set.
    /// </summary>
    public GenerationResult TextToImage(GenerationRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default, INoiseSource? noise = null, CancellationToken interrupt = default)
    {
        Validate(request);
        return Generate(request, null, 1.0, progress, cancellation, noise, interrupt: interrupt);
    }

    /// <summary>Image to image; <paramref name="interrupt"/> as for <see cref="TextToImage"/>.</summary>
    public GenerationResult ImageToImage(ImageToImageRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default, INoiseSource? noise = null, CancellationToken interrupt = default)
    {
        Validate(request);
        return Generate(request, request.InitImage, request.Strength, progress, cancellation, noise, interrupt: interrupt);
    }

    /// <summary>
    /// Throws for a request this model cannot run, before any work: the request's own checks, sizes that are
    /// not multiples of <see cref="VaeScaleFactor"/>, an unknown sampler.
    /// </summary>
    public void Validate(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        CheckInpaintingInput(request);
        var f = VaeScaleFactor;
        if (request.Width is int w && w % f != 0)
            throw new ArgumentOutOfRangeException(nameof(request.Width), w, $"width must be a positive multiple of {f}");
        if (request.Height is int h && h % f != 0)
            throw new ArgumentOutOfRangeException(nameof(request.Height), h, $"height must be a positive multiple of {f}");
        if (request.Sampler is not null || request.Schedule is not null) _ = RequestedSampler(request);
        ValidateControlNets(request);
        ValidateXl(request);
    }

    /// <summary>The request's sampler with its schedule type (the model's own sampler when only a schedule is given); null for neither.</summary>
    private SamplerInfo? RequestedSampler(GenerationRequest r)
    {
        if (r.Sampler is { } name) return Samplers.Get(name, r.Schedule);
        if (r.Schedule is null) return null;
        var own = Samplers.Of(SchedulerConfig)
            ?? throw new ArgumentException($"the model's scheduler ({SchedulerConfig.ClassName}) is no sampler of the registry: name a sampler with the schedule type", nameof(r.Schedule));
        return Samplers.WithSchedule(own, ScheduleTypes.Get(r.Schedule));
    }

    private GenerationResult Generate(GenerationRequest r, RgbImage? initImage, double strength, IProgress<GenerationProgress>? progress,
        CancellationToken cancellation, INoiseSource? noise, RgbImage? inpaintMask = null, CancellationToken interrupt = default)
    {
        var clock = Stopwatch.StartNew();
        var adapters = PrepareAdapters(r);
        var (width, height) = OutputSize(r, initImage);
        var n = r.NumImages;
        // Only per-image sources can be cut into chunks without changing the images; any other source is drawn
        // chunk after chunk, so it is chunked only when memory demands it.
        var plan = PlanBatches(r, width, height, chunkable: noise is null or BatchNoise);
        var sized = initImage is null || (initImage.Width == width && initImage.Height == height) ? initImage : initImage.ToRgb().ResizeAndCrop(width, height);

        using var inference = Autograd.InferenceMode();
        var chunks = plan.Chunks(n).ToList();
        var latents = new List<Tensor>(chunks.Count);
        var pixels = new List<Tensor>(chunks.Count);
        var images = new List<RgbImage>(n);
        var parameters = new List<GenerationParameters>(n);
        try
        {
            foreach (var (offset, count) in chunks)
            {
                // Image i draws from seed + i whichever chunk it falls in.
                using var chunkNoise = noise switch
                {
                    null => BatchNoise.FromSeed(r.Seed + (ulong)offset, count),
                    BatchNoise batch => batch.Slice(offset, count),
                    _ => null,
                };
                var chunk = new Chunk(offset, count, latents.Count, chunks.Count);
                using var scheduler = CreateScheduler(r);
                var final = Denoise(adapters.Encoded, sized, strength, chunk, width, height, scheduler, chunkNoise ?? noise!, progress, clock, cancellation, inpaintMask, interrupt);
                latents.Add(final);
                if (!r.LatentOutput)
                {
                    using var decoded = Decode(final);
                    images.AddRange(RgbImage.FromUnitTensor(decoded));
                    using var nhwc = decoded.Permute(0, 2, 3, 1);
                    pixels.Add(nhwc.Contiguous());
                }
                for (int i = offset; i < offset + count; i++)
                {
                    var own = Parameters(r, scheduler, width, height, i, initImage is null ? null : strength);
                    parameters.Add(own with { Prompt = adapters.RecordedPrompt, Extra = [.. own.Extra, .. adapters.Parameters] });
                }
                // an interrupted chunk ends the request: A1111 breaks its batch loop, the chunks not started make no images
                if (interrupt.IsCancellationRequested) break;
            }
            // output_type="latent": no pixels
            if (pixels.Count == 0) pixels.Add(Tensors.Zeros([0, height, width, 3]));
            return new GenerationResult(images, parameters, Concatenate(latents), Concatenate(pixels))
            {
                Warnings = adapters.Warnings,
                Interrupted = interrupt.IsCancellationRequested,
            };
        }
        finally
        {
            foreach (var t in latents.Concat(pixels)) t.Dispose();
            CpuCache.Trim(); // a generation's freed activations go back to the system between requests
        }
    }

    /// <summary>One chunk of a request: images <see cref="Offset"/> … + <see cref="Count"/>, chunk <see cref="Index"/> of <see cref="Total"/>.</summary>
    private readonly record struct Chunk(int Offset, int Count, int Index, int Total);

    /// <summary>The parts joined along the batch; a single part is moved out of the list rather than copied.</summary>
    private static Tensor Concatenate(List<Tensor> parts)
    {
        if (parts.Count != 1) return Tensor.Cat(parts);
        var only = parts[0];
        parts.Clear();
        return only;
    }

    /// <summary>
    /// The denoising loop for one chunk: returns its final latents. Progress counts steps over all chunks (chunk k's step i
    /// is step k × steps + i of chunks × steps); the latents are checked to be finite after every step. When
    /// <paramref name="interrupt"/> fires, the loop ends after the running step and returns that step's prediction of the
    /// clean latents (the sample itself for a scheduler that gives none), what A1111 decodes when interrupted.
    /// </summary>
    private Tensor Denoise(GenerationRequest r, RgbImage? initImage, double strength, Chunk chunk, int width, int height, IScheduler scheduler,
        INoiseSource source, IProgress<GenerationProgress>? progress, Stopwatch clock, CancellationToken cancellation, RgbImage? inpaintMask = null,
        CancellationToken interrupt = default)
    {
        var device = Options.Device;
        scheduler.SetTimesteps(r.Steps, device);
        var guided = r.GuidanceScale > 1;
        using var conditioning = prompts.Encode(r, chunk.Count, guided, width, height, Options);

        // img2img starts part-way: diffusers' get_timesteps (init_timestep = ⌊steps × strength⌋).
        var initSteps = Math.Min((int)(r.Steps * strength), r.Steps);
        var start = Math.Max(r.Steps - initSteps, 0) * scheduler.Order;
        var timesteps = scheduler.Timesteps.Skip(start).ToList();
        // SDXL's base → refiner hand-off cuts the schedule at denoising_end / starts it at denoising_start.
        (start, timesteps) = DenoisingWindow(r, scheduler, start, timesteps);
        if (timesteps.Count == 0)
            throw new ArgumentOutOfRangeException(nameof(strength), strength, $"strength {strength} with {r.Steps} steps leaves no denoising step; raise strength or steps");
        if (initImage is not null || r.Xl?.DenoisingStart is not null) scheduler.SetBeginIndex(start);
        using var control = PrepareControlNets(r, chunk.Count, width, height, guided, timesteps.Count);

        // inpainting: the start latents, and what the steps below add for a 9-channel or a 4-channel U-Net
        using var inpainting = inpaintMask is null ? null : PrepareInpainting(r, initImage!, inpaintMask, strength, chunk, guided, scheduler, timesteps[0], source);
        var latents = inpainting?.Start() ?? (initImage is null
            ? InitialLatents(r, chunk, width, height, scheduler, source)
            : NoisedImageLatents(initImage, chunk.Count, scheduler, timesteps[0], source));

        // progress counts inference steps: a second-order scheduler calls the model twice per step
        var steps = StepProgress.Steps(timesteps.Count, scheduler.Order);
        var total = steps * chunk.Total;
        for (int i = 0; i < timesteps.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            var t = timesteps[i];
            using (var step = DisposeScope.Enter())
            {
                var input = guided ? Tensor.Cat([latents, latents]) : latents;
                var scaled = scheduler.ScaleModelInput(input, t);
                // the ControlNet sees the 4-channel latents, not an inpainting U-Net's 9-channel input (diffusers' control_model_input)
                var prompt = conditioning.ForDenoiser();
                var call = control?.Condition(i, scaled, t, prompt) ?? prompt;
                if (inpainting is not null) scaled = inpainting.ModelInput(scaled);
                var prediction = Models.Denoiser.Forward(scaled, t, call);
                if (guided) prediction = Guidance.Apply(prediction, r.GuidanceScale, r.GuidanceRescale);
                var output = scheduler.Step(prediction, t, latents, source);
                var next = inpainting?.AfterStep(output.PrevSample, scheduler, timesteps, i) ?? output.PrevSample;
                latents.Dispose();
                latents = step.Keep(next);
                try
                {
                    NonFiniteException.ThrowIfNotFinite(latents, StepProgress.Steps(i + 1, scheduler.Order), steps, t);
                }
                catch
                {
                    latents.Dispose();
                    throw;
                }
                if (!StepProgress.CompletesStep(i, timesteps.Count, scheduler.Order)) continue;
                var done = StepProgress.Steps(i + 1, scheduler.Order);
                var preview = WantsPreview(r, done - 1, steps, progress) ? Preview(output.PredOriginalSample ?? output.PrevSample) : null;
                progress?.Report(new GenerationProgress(chunk.Index * steps + done, total, t, clock.Elapsed, preview));
                if (interrupt.IsCancellationRequested && i < timesteps.Count - 1)
                {
                    // A1111 decodes the step's prediction of the clean latents (the sample for a scheduler that gives none); an
                    // ordinary U-Net's inpainting keeps the image outside the mask, as after the last step. A copy either way:
                    // a multistep scheduler keeps its predictions and frees them with itself.
                    var clean = output.PredOriginalSample ?? output.PrevSample;
                    var partial = inpainting?.Interrupted(clean) ?? clean.Clone();
                    latents.Dispose();
                    return step.Keep(partial);
                }
            }
        }
        return latents;
    }

    /// <summary>
    /// The request's chunk size from the memory estimate (<see cref="MemoryEstimate"/>), or a <see cref="MemoryLimitException"/>
    /// before anything is allocated. <paramref name="chunkable"/>: the noise can be split per image, so the default cap on
    /// the chunk size applies.
    /// </summary>
    private BatchPlan PlanBatches(GenerationRequest r, int width, int height, bool chunkable)
    {
        var f = VaeScaleFactor;
        var element = Options.DType.ElementSize();
        var rowsPerImage = r.GuidanceScale > 1 ? 2 : 1;
        var attention = AttentionCost.On(Options.Device, Options.AttentionSliceSize);
        long latentHeight = height / f, latentWidth = width / f;
        // The U-Net's activations are freed before the VAE runs: the chunk's peak is the larger of the two.
        double ChunkBytes(long images) => Math.Max(
            Models.Denoiser.EstimateStepBytes(latentHeight, latentWidth, rowsPerImage * images, element, attention)
                + ControlNetStepBytes(r, latentHeight, latentWidth, rowsPerImage * images, element, attention),
            Models.Autoencoder.EstimateDecodeBytes(height, width, images, attention.Fused));
        var perImage = MemoryEstimate.ResultImage(height, width) + 4.0 * Models.Denoiser.InChannels * latentHeight * latentWidth;
        var advice = new List<string>();
        if (!attention.Fused && Options.AttentionSliceSize is null) advice.Add("--attention-slicing 1");
        if (!Options.VaeTiling) advice.Add("--vae-tiling");
        advice.Add("a smaller size");
        var available = Options.MemoryLimit ?? AvailableMemory.Bytes(Options.Device);
        var maxChunk = chunkable ? BatchPlan.DefaultMaxChunk(Options.Device) : r.NumImages;
        return BatchPlan.Choose(r.NumImages, r.BatchSize, maxChunk, ChunkBytes, perImage, available, $"{width}×{height}", advice);
    }

    /// <summary>Decodes the progress previews (<see cref="GenerationRequest.PreviewEvery"/>); null means this pipeline's own VAE.</summary>
    public IPreviewDecoder? PreviewDecoder { get; set; }

    private static bool WantsPreview(GenerationRequest r, int index, int count, IProgress<GenerationProgress>? progress) =>
        progress is not null && r.PreviewEvery > 0 && ((index + 1) % r.PreviewEvery == 0 || index == count - 1);

    private RgbImage Preview(Tensor latents)
    {
        using var first = latents.Narrow(0, 0, 1);
        return (PreviewDecoder ?? new VaePreviewDecoder(this)).Decode(first);
    }

    /// <summary>Latents → images [n, 3, H, W] in [0, 1]: clamp(decode(latents / scaling_factor) / 2 + 0.5, 0, 1), in float32.</summary>
    public Tensor Decode(Tensor latents)
    {
        using var scope = DisposeScope.Enter();
        var vae = Models.Autoencoder;
        var decoded = vae.Decode(vae.UnscaleLatents(latents.To(vae.DType))).To(DType.Float32);
        return scope.Keep((decoded / 2 + 0.5).Clamp(0, 1));
    }

    /// <summary>The size a request runs at: its Width/Height, else the init image's (rounded down to the VAE factor), else the U-Net's sample size.</summary>
    public (int Width, int Height) OutputSize(GenerationRequest r, RgbImage? initImage)
    {
        if (initImage is not null && r.Width is null && r.Height is null)
        {
            // diffusers' VaeImageProcessor: each side rounded down to a multiple of the VAE's factor
            var f = VaeScaleFactor;
            var (w, h) = (initImage.Width / f * f, initImage.Height / f * f);
            if (w == 0 || h == 0) throw new ArgumentException($"the init image is {initImage.Width}x{initImage.Height}; it must be at least {f}x{f}");
            return (w, h);
        }
        var sample = Models.Denoiser.SampleSize ?? [64, 64];
        return (r.Width ?? sample[1] * VaeScaleFactor, r.Height ?? sample[0] * VaeScaleFactor);
    }

    /// <summary>The request's sampler on the model's scheduler config, or the model's scheduler; η goes to every scheduler (one that does not use it ignores it).</summary>
    private IScheduler CreateScheduler(GenerationRequest r)
    {
        var scheduler = RequestedSampler(r) is { } sampler ? sampler.Create(SchedulerConfig) : SchedulerFactory.Create(SchedulerConfig);
        scheduler.Eta = r.Eta;
        return scheduler;
    }

    /// <summary>x_T: the given latents or noise of shape [n, C, h/f, w/f], f = <see cref="VaeScaleFactor"/> (diffusers' prepare_latents), times init_noise_sigma.</summary>
    private Tensor InitialLatents(GenerationRequest r, Chunk chunk, int width, int height, IScheduler scheduler, INoiseSource noise)
    {
        using var scope = DisposeScope.Enter();
        var x = InitialNoise(r, chunk, width, height, noise);
        // Latents handed over part-way through the schedule (denoising_start) are already noised to it.
        return scope.Keep((r.Xl?.DenoisingStart is null ? x * scheduler.InitNoiseSigma : x).To(Options.DType));
    }

    /// <summary>This chunk's rows of the request's latents, or a draw of [chunk, C, h/f, w/f], in float32 and not yet scaled.</summary>
    private Tensor InitialNoise(GenerationRequest r, Chunk chunk, int width, int height, INoiseSource noise)
    {
        long[] shape = [r.NumImages, Models.Denoiser.LatentChannels, height / VaeScaleFactor, width / VaeScaleFactor];
        if (r.Latents is { } given)
        {
            if (!given.Shape.SequenceEqual(shape))
                throw new ArgumentException($"the given latents are [{string.Join(", ", given.Shape)}] but this request needs [{string.Join(", ", shape)}]");
            using var scope = DisposeScope.Enter();
            return scope.Keep(given.Narrow(0, chunk.Offset, chunk.Count).To(Options.Device, DType.Float32));
        }
        shape[0] = chunk.Count;
        return noise.Next(shape, DType.Float32, Options.Device);
    }

    /// <summary>img2img: z₀ = scaling × (μ + σε) of the VAE posterior, then noised to the first timestep with fresh noise.</summary>
    private Tensor NoisedImageLatents(RgbImage sized, int n, IScheduler scheduler, double timestep, INoiseSource noise)
    {
        using var scope = DisposeScope.Enter();
        var pixels = sized.ToRgb().ToTensor();
        var init = ImageLatents(n == 1 ? pixels : pixels.Repeat(n, 1, 1, 1), noise);
        var eps = noise.Next(init.Shape, DType.Float32, Options.Device);
        var t = Tensors.Full([n], timestep, scheduler.TimestepDType, Options.Device);
        return scope.Keep(scheduler.AddNoise(init, eps, t).To(Options.DType));
    }

    /// <summary>The PNG parameters of image <paramref name="index"/>: the sampler as the registry names it, η only where the sampler uses it (as A1111 writes it).</summary>
    private GenerationParameters Parameters(GenerationRequest r, IScheduler scheduler, int width, int height, int index, double? strength)
    {
        var (sampler, scheduleType) = Samplers.ParameterNames(scheduler.Config);
        return new GenerationParameters
        {
            Prompt = r.Prompt,
            NegativePrompt = r.NegativePrompt,
            Steps = r.Steps,
            Sampler = sampler,
            ScheduleType = scheduleType,
            CfgScale = r.GuidanceScale,
            Seed = (long)(r.Seed + (ulong)index),
            Width = width,
            Height = height,
            Model = ModelName,
            Strength = strength,
            ClipSkip = r.ClipSkip > 1 ? r.ClipSkip : null,
            Eta = scheduler.UsesEta && r.Eta > 0 ? r.Eta : null,
            Extra = [.. (r is InpaintRequest inpaint ? InpaintParameters(inpaint) : []), .. ControlNetParameters(r)],
        };
    }

    public void Dispose()
    {
        loras?.Dispose();
        Models.Dispose();
        CpuCache.Trim();
    }
}

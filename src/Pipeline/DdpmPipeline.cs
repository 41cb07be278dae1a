using System.Text.Json.Nodes;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline;

/// <summary>What to generate with <see cref="DdpmPipeline"/>.</summary>
/// <param name="BatchSize">Number of images.</param>
/// <param name="Steps">Inference steps (diffusers' DDPMPipeline default: 1000).</param>
/// <param name="Height">Image height; null: the U-Net's sample_size.</param>
/// <param name="Width">Image width; null: the U-Net's sample_size.</param>
/// <param name="ChunkSize">
/// Images denoised together; the batch runs in chunks of this many, one after another. Null: the largest chunk whose
/// memory estimate fits in half the available memory, capped at 8 on a CPU (16 on CUDA) when the noise source is a
/// <see cref="BatchNoise"/> (per-image sources: chunking leaves the images unchanged); any other source is drawn chunk
/// after chunk, so it is chunked only when memory demands it.
/// </param>
public sealed record DdpmOptions(int BatchSize = 1, int Steps = 1000, int? Height = null, int? Width = null, int? ChunkSize = null);

/// <summary>Progress of a generation: <see cref="Step"/> of <see cref="TotalSteps"/> steps done over all chunks, the last at <see cref="Timestep"/>.</summary>
public readonly record struct DdpmProgress(int Step, int TotalSteps, double Timestep);

/// <summary>
/// diffusers' DDPMPipeline: unconditional image generation in pixel space with a
/// <see cref="UNet2DModel"/> and a scheduler (DDPM, or any other). From x_T ~ N(0, I):
/// <code>
/// for t in timesteps:  x = scheduler.step(unet(x, t), t, x)      (variance noise drawn from the noise source)
/// image = clamp(x / 2 + 0.5, 0, 1)                               as [N, H, W, C] (output_type "np")
/// </code>
/// The pipeline owns its U-Net and scheduler.
/// </summary>
public sealed class DdpmPipeline : IDisposable
{
    public const string ClassName = "DDPMPipeline";

    public UNet2DModel UNet { get; }
    public IScheduler Scheduler { get; }

    public DdpmPipeline(UNet2DModel unet, IScheduler scheduler)
    {
        UNet = unet;
        Scheduler = scheduler;
    }

    /// <summary>
    /// Loads a diffusers DDPMPipeline folder: model_index.json, unet/ (UNet2DModel) and
    /// scheduler/scheduler_config.json, e.g. google/ddpm-cifar10-32.
    /// </summary>
    public static DdpmPipeline FromPretrained(string directory, Device? device = null)
    {
        var index = Path.Combine(directory, "model_index.json");
        if (!File.Exists(index)) throw new FileNotFoundException($"{index}: not found (expected a diffusers DDPMPipeline folder)", index);
        var json = JsonNode.Parse(Torch.BoundedFile.ReadAllText(index, Torch.BoundedFile.ConfigLimit, "model index")) as JsonObject ?? throw new ConfigException($"{index}: is not a JSON object");
        var className = json["_class_name"]?.GetValue<string>();
        if (className is not null && className != ClassName)
            throw new ConfigException($"{index}: field '_class_name' is \"{className}\", expected \"{ClassName}\"");
        foreach (var component in new[] { "unet", "scheduler" })
            if (json[component] is null) throw new ConfigException($"{index}: field '{component}' is missing");
        var unetClass = json["unet"]!.AsArray()[1]?.GetValue<string>();
        if (unetClass != UNet2DModelConfig.ClassName)
            throw new ConfigException($"{index}: field 'unet' names {unetClass}, expected {UNet2DModelConfig.ClassName}");

        var unet = UNet2DModel.FromPretrained(Path.Combine(directory, "unet"), device);
        try
        {
            var scheduler = SchedulerFactory.Load(Path.Combine(directory, "scheduler", "scheduler_config.json"));
            return new DdpmPipeline(unet, scheduler);
        }
        catch
        {
            unet.Dispose();
            throw;
        }
    }

    /// <summary>Bytes a generation may plan for; null: what the device has available when it starts.</summary>
    public long? MemoryLimit { get; set; }

    /// <summary>
    /// Generates <see cref="DdpmOptions.BatchSize"/> images in memory-bounded chunks (<see cref="DdpmOptions.ChunkSize"/>),
    /// or refuses with a <see cref="MemoryLimitException"/> before allocating. Every random draw (the initial image, then the
    /// scheduler's per-step variance noise) comes from <paramref name="noise"/>, in diffusers' order. Stops with a
    /// <see cref="NonFiniteException"/> at the step where the images become NaN or infinite.
    /// Returns [N, H, W, C] float32 on the CPU with values in [0, 1] (diffusers' output_type "np").
    /// </summary>
    public Tensor Generate(DdpmOptions options, INoiseSource noise, IProgress<DdpmProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(noise);
        return Generate(options, chunkable: noise is BatchNoise, (offset, count) => (noise as BatchNoise)?.Slice(offset, count), noise, progress, cancellationToken);
    }

    /// <summary>
    /// Like <see cref="Generate(DdpmOptions, INoiseSource, IProgress{DdpmProgress}?, CancellationToken)"/> with image i drawn
    /// from a CPU generator seeded <paramref name="seed"/> + i (as AUTOMATIC1111 seeds a batch): the images do not depend
    /// on the chunk size, and only the current chunk's generators exist at a time.
    /// </summary>
    public Tensor Generate(DdpmOptions options, ulong seed, IProgress<DdpmProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Generate(options, chunkable: true, (offset, count) => BatchNoise.FromSeed(seed + (ulong)offset, count), null, progress, cancellationToken);

    /// <summary>The chunked loop: <paramref name="chunkNoise"/> gives a chunk its own noise, else it draws from <paramref name="noise"/>.</summary>
    private Tensor Generate(DdpmOptions options, bool chunkable, Func<int, int, BatchNoise?> chunkNoise, INoiseSource? noise,
        IProgress<DdpmProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "batch size must be at least 1");
        if (options.Steps < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Steps, "steps must be at least 1");
        if (options.ChunkSize is < 1) throw new ArgumentOutOfRangeException(nameof(options), options.ChunkSize, "chunk size must be at least 1");
        var (height, width) = Size(options);
        var weight = UNet.StateDict()["conv_in.weight"];
        var (device, dtype) = (weight.Device, weight.DType);
        var plan = Plan(options, height, width, device, dtype, chunkable);

        using var inference = Autograd.InferenceMode();
        var chunks = plan.Chunks(options.BatchSize).ToList();
        var parts = new List<Tensor>(chunks.Count);
        try
        {
            foreach (var (offset, count) in chunks)
            {
                using var own = chunkNoise(offset, count);
                var chunkProgress = progress is null ? null : new Progress(progress, parts.Count, chunks.Count);
                parts.Add(GenerateChunk(count, options.Steps, height, width, device, dtype, own ?? noise!, chunkProgress, cancellationToken));
            }
            if (parts.Count == 1)
            {
                var only = parts[0];
                parts.Clear();
                return only;
            }
            return Tensor.Cat(parts);
        }
        finally
        {
            foreach (var part in parts) part.Dispose();
        }
    }

    /// <summary>Forwards a chunk's step reports as steps of the whole generation.</summary>
    private sealed class Progress(IProgress<DdpmProgress> inner, int chunk, int chunks) : IProgress<DdpmProgress>
    {
        public void Report(DdpmProgress value) =>
            inner.Report(new DdpmProgress(chunk * value.TotalSteps + value.Step, chunks * value.TotalSteps, value.Timestep));
    }

    private Tensor GenerateChunk(int count, int steps, long height, long width, Device device, DType dtype, INoiseSource noise,
        IProgress<DdpmProgress>? progress, CancellationToken cancellationToken)
    {
        using var scope = DisposeScope.Enter();
        Scheduler.SetTimesteps(steps, device);
        var image = noise.Next([count, UNet.Config.InChannels, height, width], dtype, device);
        if (Scheduler.InitNoiseSigma != 1) image = image * Scheduler.InitNoiseSigma;

        var timesteps = Scheduler.Timesteps;
        for (int i = 0; i < timesteps.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var t = timesteps[i];
            using (var step = DisposeScope.Enter())
            {
                var input = Scheduler.ScaleModelInput(image, t);
                var timestep = Tensors.Scalar(t, Scheduler.TimestepDType, device);
                var modelOutput = UNet.Forward(input, timestep);
                var next = step.Keep(Scheduler.Step(modelOutput, t, image, noise).PrevSample);
                image.Dispose();
                image = next;
            }
            // progress counts inference steps: a second-order scheduler calls the model twice per step
            int totalSteps = StepProgress.Steps(timesteps.Count, Scheduler.Order), done = StepProgress.Steps(i + 1, Scheduler.Order);
            NonFiniteException.ThrowIfNotFinite(image, done, totalSteps, t, "images");
            if (StepProgress.CompletesStep(i, timesteps.Count, Scheduler.Order)) progress?.Report(new DdpmProgress(done, totalSteps, t));
        }

        var result = (image / 2 + 0.5).Clamp(0, 1).Permute(0, 2, 3, 1).To(Device.CPU, DType.Float32).Contiguous();
        return scope.Keep(result);
    }

    /// <summary>The chunk size from <see cref="MemoryEstimate.PixelUNetStep"/>, or a <see cref="MemoryLimitException"/>.</summary>
    private BatchPlan Plan(DdpmOptions options, long height, long width, Device device, DType dtype, bool chunkable)
    {
        var attention = AttentionCost.On(device);
        var channels = UNet.Config.InChannels;
        double ChunkBytes(long images) => MemoryEstimate.PixelUNetStep(UNet.Config, height, width, images, dtype.ElementSize(), attention);
        var available = MemoryLimit ?? AvailableMemory.Bytes(device);
        var maxChunk = chunkable ? BatchPlan.DefaultMaxChunk(device) : options.BatchSize;
        return BatchPlan.Choose(options.BatchSize, options.ChunkSize, maxChunk, ChunkBytes, MemoryEstimate.ResultImage(height, width, channels),
            available, $"{width}×{height}", ["a smaller size"]);
    }

    private (long Height, long Width) Size(DdpmOptions options)
    {
        var configured = UNet.Config.SampleSize;
        long? h = options.Height ?? (configured is null ? null : configured.IsList ? configured.List![0] : configured.Value);
        long? w = options.Width ?? (configured is null ? null : configured.IsList ? configured.List![1] : configured.Value);
        if (h is null || w is null) throw new ArgumentException("the U-Net's config has no sample_size: give Height and Width");
        long multiple = 1L << (UNet.Config.BlockOutChannels.Length - 1);
        if (h % multiple != 0 || w % multiple != 0)
            throw new ArgumentException($"image size {h}×{w} must be a multiple of {multiple} (the U-Net downsamples {UNet.Config.BlockOutChannels.Length - 1} times)");
        return (h.Value, w.Value);
    }

    public void Dispose()
    {
        UNet.Dispose();
        Scheduler.Dispose();
    }
}

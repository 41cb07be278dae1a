using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Ldm;

/// <summary>
/// Latent diffusion with a text encoder trained jointly, as diffusers' train_text_to_image.py does
/// for the U-Net: z₀ = scaling_factor · (z ~ q(z | x)) from the frozen VAE (no gradient), ε ~ N(0, I),
/// t ~ U{0, …, T − 1}, z_t = add_noise(z₀, ε, t), loss ‖ε − unet(z_t, t, text_encoder(caption))‖².
/// Empty captions (a fraction of the data) teach the unconditional prediction that classifier-free
/// guidance needs. Sample grids and the export go through <see cref="StableDiffusionPipeline"/>.
/// </summary>
public sealed class LdmTask : ITrainingTask, IDisposable
{
    private readonly DDPMScheduler noiseScheduler;
    private readonly Dictionary<string, long[]> idCache = new(StringComparer.Ordinal);
    private StableDiffusionPipeline? pipeline;

    public TextToImageModel Network { get; }
    public AutoencoderKL Vae { get; }
    public ClipTokenizer Tokenizer { get; }
    public DDPMSchedulerConfig NoiseSchedulerConfig { get; }
    public SchedulerConfig InferenceSchedulerConfig { get; }
    public LdmSamplingOptions Sampling { get; }
    public bool SampleLatents { get; }
    public string ModelName { get; }
    public Module Model => Network;

    public LdmTask(TextToImageModel network, AutoencoderKL vae, ClipTokenizer tokenizer, DDPMSchedulerConfig noiseSchedulerConfig,
        SchedulerConfig inferenceSchedulerConfig, LdmSamplingOptions sampling, bool sampleLatents, string modelName)
    {
        Network = network;
        Vae = vae;
        Vae.Eval();
        foreach (var p in Vae.Parameters()) p.RequiresGrad = false;
        Tokenizer = tokenizer;
        NoiseSchedulerConfig = noiseSchedulerConfig;
        noiseScheduler = new DDPMScheduler(noiseSchedulerConfig);
        InferenceSchedulerConfig = inferenceSchedulerConfig;
        Sampling = sampling;
        SampleLatents = sampleLatents;
        ModelName = modelName;
    }

    /// <summary>Token ids [B, model_max_length] (int64) of <paramref name="captions"/>.</summary>
    public Tensor TokenIds(IReadOnlyList<string> captions, Device device)
    {
        var length = Tokenizer.ModelMaxLength;
        var ids = new long[captions.Count * length];
        for (int i = 0; i < captions.Count; i++)
        {
            if (!idCache.TryGetValue(captions[i], out var row))
                idCache[captions[i]] = row = Tokenizer.Encode(captions[i]).InputIdsInt64();
            row.CopyTo(ids, i * length);
        }
        using var cpu = Tensor.From(ids, captions.Count, length);
        return cpu.To(device);
    }

    /// <summary>The scaled latents of images [B, 3, H, W] in [−1, 1]: scaling_factor · z, z the posterior sample (noise from <paramref name="random"/>) or mean.</summary>
    public Tensor EncodeLatents(Tensor images, Generator random, BatchShard shard = default)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        using var posterior = Vae.Encode(images);
        var z = SampleLatents ? posterior.Sample(TrainingRandom.RandnLike(posterior.Mean, random, shard)) : posterior.Mode();
        return scope.Keep(Vae.ScaleLatents(z));
    }

    public Tensor ComputeLoss(Batch batch, Generator random)
    {
        var captions = batch.Captions ?? throw new InvalidOperationException("text-to-image training needs captioned data");
        var latents = EncodeLatents(batch.Data, random, batch.Shard);
        var noise = TrainingRandom.RandnLike(latents, random, batch.Shard);
        var timesteps = TrainingRandom.Randint(0, NoiseSchedulerConfig.NumTrainTimesteps, latents.Size(0), random, latents.Device, batch.Shard);
        var noisy = noiseScheduler.AddNoise(latents, noise, timesteps);
        var ids = TokenIds(captions, latents.Device);
        var prediction = Network.PredictNoise(noisy, timesteps, ids);
        return Functional.MseLoss(prediction, noise);
    }

    /// <summary>
    /// A pipeline over the live modules (not owned: disposing the task disposes the modules), on the device and
    /// dtype the trainer moved the U-Net to: a pipeline on other options would move the trained modules back.
    /// </summary>
    public StableDiffusionPipeline Pipeline
    {
        get
        {
            var placement = ModulePlacement();
            // rebuilt if the modules moved since (the old pipeline owns nothing, so it is dropped, not disposed)
            if (pipeline is null || pipeline.Options != placement)
                pipeline = new StableDiffusionPipeline(Tokenizer, Network.TextEncoder, Network.Unet, Vae, InferenceSchedulerConfig, ModelName, placement);
            return pipeline;
        }
    }

    private PipelineOptions ModulePlacement()
    {
        var weight = Network.Unet.Parameters().First();
        return new PipelineOptions { Device = weight.Device, DType = weight.DType };
    }

    public string? WriteSamples(string directory, long step, Generator random, CancellationToken cancellationToken)
    {
        var images = new List<RgbImage>();
        for (int i = 0; i < Sampling.Prompts.Length; i++)
        {
            using var result = Pipeline.TextToImage(new GenerationRequest
            {
                Prompt = Sampling.Prompts[i],
                Steps = Sampling.Steps,
                GuidanceScale = Sampling.GuidanceScale,
                Seed = (ulong)i,
                NumImages = 4,
            }, cancellation: cancellationToken);
            images.AddRange(result.Images);
        }
        var grid = ImageGrid.Compose(images, columns: 8, spacing: 2);
        var path = Path.Combine(directory, $"step-{step:D6}.png");
        Directory.CreateDirectory(directory);
        grid.SavePng(path);
        return path;
    }

    /// <summary>Writes the diffusers StableDiffusionPipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).</summary>
    public void SaveModel(string directory) => Pipeline.Save(directory, overwrite: true);

    public void Dispose()
    {
        noiseScheduler.Dispose();
        Network.Dispose();
        Vae.Dispose();
    }
}

using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Ddpm;

/// <summary>
/// Pixel-space DDPM (Ho et al. 2020) as a training task, as diffusers' train_unconditional.py does
/// it: ε ~ N(0, I), t ~ U{0, …, T − 1} per image, x_t = scheduler.add_noise(x₀, ε, t), loss between
/// ε and the U-Net's prediction. Samples are drawn with DDPMPipeline's loop; the export is the
/// diffusers pipeline folder.
/// </summary>
public sealed class DdpmTask : ITrainingTask, IDisposable
{
    private readonly DDPMScheduler noiseScheduler;
    private readonly LossKind loss;

    public PixelDenoiser Denoiser { get; }
    public DDPMSchedulerConfig SchedulerConfig { get; }
    public int SampleSize { get; }
    public int SampleCount { get; }
    public int InferenceSteps { get; }
    public Module Model => Denoiser.Module;

    public DdpmTask(PixelDenoiser denoiser, DDPMSchedulerConfig schedulerConfig, LossKind loss, int sampleSize, int sampleCount, int inferenceSteps)
    {
        Denoiser = denoiser;
        SchedulerConfig = schedulerConfig;
        noiseScheduler = new DDPMScheduler(schedulerConfig);
        this.loss = loss;
        SampleSize = sampleSize;
        SampleCount = sampleCount;
        InferenceSteps = inferenceSteps;
    }

    public Tensor ComputeLoss(Batch batch, Generator random)
    {
        var clean = batch.Data;
        // Noise first, then timesteps: train_unconditional.py's order of draws.
        var noise = TrainingRandom.RandnLike(clean, random, batch.Shard);
        var timesteps = TrainingRandom.Randint(0, SchedulerConfig.NumTrainTimesteps, clean.Size(0), random, clean.Device, batch.Shard);
        var noisy = noiseScheduler.AddNoise(clean, noise, timesteps);
        return Losses.Compute(loss, Denoiser.Predict(noisy, timesteps), noise);
    }

    /// <summary>Draws <see cref="SampleCount"/> images with DDPMPipeline's loop and writes them as one PNG grid.</summary>
    public string? WriteSamples(string directory, long step, Generator random, CancellationToken cancellationToken)
    {
        var images = RgbImage.FromTensor(Sample(SampleCount, random, cancellationToken));
        var grid = ImageGrid.Compose(images, columns: (int)Math.Ceiling(Math.Sqrt(images.Length)), spacing: 2);
        var path = Path.Combine(directory, $"step-{step:D6}.png");
        Directory.CreateDirectory(directory);
        grid.SavePng(path);
        return path;
    }

    /// <summary>
    /// diffusers' DDPMPipeline: x_T ~ N(0, I) from <paramref name="random"/>, then for each of the
    /// <see cref="InferenceSteps"/> timesteps x ← scheduler.step(unet(x, t), t, x) with the step's noise
    /// from the same generator. Returns [n, C, S, S] in about [−1, 1].
    /// </summary>
    public Tensor Sample(int count, Generator random, CancellationToken cancellationToken = default)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        using var scheduler = new DDPMScheduler(SchedulerConfig);
        using var noise = new GeneratorNoise(random);
        var device = Denoiser.Module.Parameters().First().Device;
        scheduler.SetTimesteps(InferenceSteps, device);
        var x = TrainingRandom.Randn([count, Denoiser.Channels, SampleSize, SampleSize], random, device).DetachFromDisposeScope();
        foreach (var t in scheduler.Timesteps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                x.Dispose();
                cancellationToken.ThrowIfCancellationRequested();
            }
            using var stepScope = DisposeScope.Enter();
            var output = Denoiser.Predict(x, Tensors.Scalar(t, DType.Int64, device));
            var next = scheduler.Step(output, t, x, noise).PrevSample;
            stepScope.Keep(next).DetachFromDisposeScope();
            x.Dispose();
            x = next;
        }
        return x.Device.Type == DeviceType.Cpu ? x : scope.Keep(x.To(Device.CPU));
    }

    public void SaveModel(string directory) => DdpmPipelineFolder.Save(directory, Denoiser, SchedulerConfig);

    public void Dispose()
    {
        noiseScheduler.Dispose();
        Denoiser.Dispose();
    }
}

using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Vae;

/// <summary>
/// AutoencoderKL as a training task (LDM's first stage, without LPIPS): z ~ q(z | x) by the
/// reparameterisation trick with ε from the trainer's generator, x̂ = D(z), loss =
/// mean rec(x, x̂) + kl_weight · KL(q ‖ N(0, I)) / (C·H·W). With a discriminator, from disc_start on:
/// + λ · disc_factor · (−mean D(x̂)), λ = disc_weight · ‖∇_L rec‖ / (‖∇_L g‖ + 10⁻⁴) at the decoder's
/// conv_out L, and the discriminator learns disc_factor · hinge(D(x), D(x̂)) on the same step's detached x̂
/// (LDM computes x̂ a second time for it, after the autoencoder's update).
/// Sample grids show test images over their reconstructions and log a quick test PSNR to
/// samples/psnr.jsonl; the export is a diffusers VAE folder whose scaling_factor is 1 / std(z)
/// measured on training images.
/// </summary>
public sealed class VaeTask : IAdversarialTrainingTask, IDisposable
{
    private readonly IDataset train;
    private readonly FashionColours test;
    private readonly Module<Tensor, Tensor>? discriminator;
    private (Tensor Real, Tensor Fake)? pending;
    private double adaptiveWeight;
    private KeyValuePair<string, double>[] stepMetrics = [];

    /// <summary>The training data (the scaling factor is measured on its first items).</summary>
    public IDataset TrainData => train;

    /// <summary>The test split (PSNR).</summary>
    public FashionColours TestData => test;

    public AutoencoderKL Vae { get; }
    public VaeLossOptions Loss { get; }
    public VaeEvaluationOptions Evaluation { get; }
    public int SampleCount { get; }
    public Module Model => Vae;

    /// <summary>The discriminator's options (learning rate resolved), or null when the VAE trains without one.</summary>
    public VaeDiscriminatorOptions? DiscriminatorOptions { get; }

    public Adversary? Adversary { get; }

    /// <summary>
    /// d_loss, d_weight (λ), logits_real, logits_fake (taming's log names; logits are means over the patches). taming's
    /// g_loss would be −logits_fake: the discriminator judges the very x̂ the generator term saw.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, double>> StepMetrics => stepMetrics;

    /// <summary>The scaling factor measured by the last <see cref="SaveModel"/>.</summary>
    public double? ScalingFactor { get; private set; }

    /// <summary>
    /// A task over <paramref name="vae"/>; with <paramref name="discriminator"/> and <paramref name="discriminatorOptions"/>
    /// (whose learning_rate must be set) it trains adversarially from disc_start on. The task disposes both models.
    /// </summary>
    public VaeTask(AutoencoderKL vae, VaeLossOptions loss, VaeEvaluationOptions evaluation, IDataset train, FashionColours test, int sampleCount,
        Module<Tensor, Tensor>? discriminator = null, VaeDiscriminatorOptions? discriminatorOptions = null)
    {
        if ((discriminator is null) != (discriminatorOptions is null))
            throw new ArgumentException("a discriminator needs its options, and options need a discriminator", nameof(discriminatorOptions));
        Vae = vae;
        Loss = loss;
        Evaluation = evaluation;
        this.train = train;
        this.test = test;
        SampleCount = sampleCount;
        this.discriminator = discriminator;
        DiscriminatorOptions = discriminatorOptions;
        if (discriminator is not null && discriminatorOptions is { } o)
        {
            var learningRate = o.LearningRate ?? throw new ArgumentException("the discriminator's learning rate is not set", nameof(discriminatorOptions));
            Adversary = new Adversary(discriminator, o.DiscStart ?? 0, learningRate, o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon, o.WeightDecay);
        }
    }

    public Tensor ComputeLoss(Batch batch, Generator random) => Autoencode(batch, random).Loss;

    public Tensor ComputeAdversarialLoss(Batch batch, Generator random)
    {
        var (d, options) = Gan;
        var (reconstruction, rec, loss) = Autoencode(batch, random);
        var gLoss = VaeLosses.GeneratorLoss(d.Forward(reconstruction));
        var weight = options.AdaptiveWeight
            ? VaeLosses.AdaptiveWeight(rec, gLoss, Vae.Decoder.ConvOut.Weight, options.DiscWeight)
            : options.DiscWeight;
        adaptiveWeight = weight;
        pending = (batch.Data, reconstruction.Detach());
        return loss + gLoss * (weight * options.DiscFactor);
    }

    public Tensor ComputeDiscriminatorLoss(Generator random)
    {
        var (real, fake) = pending ?? throw new InvalidOperationException("ComputeDiscriminatorLoss needs the reconstructions of a preceding ComputeAdversarialLoss");
        pending = null;
        var (d, options) = Gan;
        var logitsReal = d.Forward(real.Detach());
        var logitsFake = d.Forward(fake);
        var loss = VaeLosses.DiscriminatorLoss(options.DiscLoss, logitsReal, logitsFake) * options.DiscFactor;
        stepMetrics =
        [
            new("d_loss", loss.Item()),
            new("d_weight", adaptiveWeight),
            new("logits_real", logitsReal.Mean().Item()),
            new("logits_fake", logitsFake.Mean().Item()),
        ];
        return loss;
    }

    private (Module<Tensor, Tensor> Discriminator, VaeDiscriminatorOptions Options) Gan =>
        discriminator is { } d && DiscriminatorOptions is { } o ? (d, o) : throw new InvalidOperationException("this VAE task has no discriminator");

    /// <summary>x̂ of a sample of q(z | x), the mean reconstruction term, and the loss without the adversarial term.</summary>
    private (Tensor Reconstruction, Tensor Rec, Tensor Loss) Autoencode(Batch batch, Generator random)
    {
        var x = batch.Data;
        using var posterior = Vae.Encode(x);
        var noise = TrainingRandom.RandnLike(posterior.Mean, random, batch.Shard);
        var reconstruction = Vae.Decode(posterior.Sample(noise));
        var rec = VaeLosses.Reconstruction(x, reconstruction, Loss.Reconstruction).Mean();
        if (Loss.KlWeight == 0) return (reconstruction, rec, rec);
        var perElement = posterior.Kl().Mean() / (double)(x.Size(1) * x.Size(2) * x.Size(3));
        return (reconstruction, rec, rec + perElement * Loss.KlWeight);
    }

    public string? WriteSamples(string directory, long step, Generator random, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        var psnr = VaeEvaluation.TestPsnr(Vae, test, Evaluation.SampleTestImages, cancellationToken: cancellationToken);
        AtomicFile.AppendAllText(Path.Combine(directory, "psnr.jsonl"),
            string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{{\"step\":{step},\"psnr_db\":{psnr:F3},\"test_images\":{Math.Min(Evaluation.SampleTestImages, test.Count)}}}\n"));
        using var scope = DisposeScope.Enter();
        var n = Math.Min(SampleCount, test.Count);
        var images = test.Images(Enumerable.Range(0, n).ToArray());
        var reconstruction = Vae.Forward(images.To(Vae.Parameters().First().Device)).To(Device.CPU).Clamp(-1, 1);
        var tiles = RgbImage.FromTensor(images).Concat(RgbImage.FromTensor(reconstruction)).ToList();
        var grid = ImageGrid.Compose(tiles, columns: n, spacing: 2);
        var path = Path.Combine(directory, $"step-{step:D6}.png");
        grid.SavePng(path);
        return path;
    }

    /// <summary>Writes the diffusers VAE folder with scaling_factor = 1 / std(z) over the first scaling_images training images.</summary>
    public void SaveModel(string directory)
    {
        Vae.Save(directory);
        var count = Math.Min(Evaluation.ScalingImages, train.Count);
        using var random = new Generator(0x5CA1E);
        double factor;
        using (var batch = train.GetBatch(Enumerable.Range(0, count).ToArray(), 0))
            factor = VaeEvaluation.ScalingFactor(Vae, batch.Data, random);
        ScalingFactor = factor;
        ConfigJson.Save(Path.Combine(directory, "config.json"), Vae.Config with { ScalingFactor = Math.Round(factor, 5) }, AutoencoderKLConfig.ClassName);
    }

    public void Dispose()
    {
        Vae.Dispose();
        discriminator?.Dispose();
    }
}

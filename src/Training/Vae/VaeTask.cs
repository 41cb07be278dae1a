using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Vae;

/// <summary>
/// AutoencoderKL as a training task (LDM's first stage without the adversarial term): z ~ q(z | x)
/// by the reparameterisation trick with ε from the trainer's generator, x̂ = D(z), loss =
/// mean rec(x, x̂) + kl_weight · KL(q ‖ N(0, I)) / (C·H·W). Sample grids show test images over their
/// reconstructions and log a quick test PSNR to samples/psnr.jsonl; the export is a diffusers VAE
/// folder whose scaling_factor is 1 / std(z) measured on training images.
/// </summary>
public sealed class VaeTask : ITrainingTask, IDisposable
{
    private readonly IDataset train;
    private readonly FashionColours test;

    /// <summary>The training data (the scaling factor is measured on its first items).</summary>
    public IDataset TrainData => train;

    /// <summary>The test split (PSNR).</summary>
    public FashionColours TestData => test;

    public AutoencoderKL Vae { get; }
    public VaeLossOptions Loss { get; }
    public VaeEvaluationOptions Evaluation { get; }
    public int SampleCount { get; }
    public Module Model => Vae;

    /// <summary>The scaling factor measured by the last <see cref="SaveModel"/>.</summary>
    public double? ScalingFactor { get; private set; }

    public VaeTask(AutoencoderKL vae, VaeLossOptions loss, VaeEvaluationOptions evaluation, IDataset train, FashionColours test, int sampleCount)
    {
        Vae = vae;
        Loss = loss;
        Evaluation = evaluation;
        this.train = train;
        this.test = test;
        SampleCount = sampleCount;
    }

    public Tensor ComputeLoss(Batch batch, Generator random)
    {
        var x = batch.Data;
        using var posterior = Vae.Encode(x);
        var noise = TrainingRandom.RandnLike(posterior.Mean, random);
        var reconstruction = Vae.Decode(posterior.Sample(noise));
        var rec = VaeLosses.Reconstruction(x, reconstruction, Loss.Reconstruction).Mean();
        if (Loss.KlWeight == 0) return rec;
        var perElement = posterior.Kl().Mean() / (double)(x.Size(1) * x.Size(2) * x.Size(3));
        return rec + perElement * Loss.KlWeight;
    }

    public string? WriteSamples(string directory, long step, Generator random, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        var psnr = VaeEvaluation.TestPsnr(Vae, test, Evaluation.SampleTestImages, cancellationToken: cancellationToken);
        File.AppendAllText(Path.Combine(directory, "psnr.jsonl"),
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

    public void Dispose() => Vae.Dispose();
}

using System.Text.Json.Serialization;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Vae;

/// <summary>Reconstruction quality of a VAE on the Fashion colours test split (what evaluation.json holds).</summary>
public sealed record VaeEvaluationResult(
    [property: JsonPropertyName("psnr_db")] double PsnrDb,
    [property: JsonPropertyName("test_images")] int TestImages,
    [property: JsonPropertyName("scaling_factor")] double ScalingFactor);

/// <summary>PSNR of reconstructions and the latent scaling factor (LDM §4.3.2).</summary>
public static class VaeEvaluation
{
    /// <summary>
    /// Mean squared error of <paramref name="reconstruction"/> against <paramref name="reference"/>, both
    /// in [−1, 1] (the reconstruction is clamped to it, as saving an image does), measured on the [0, 1]
    /// scale: mean(((x̂ − x) / 2)²).
    /// </summary>
    public static double MeanSquaredError(Tensor reference, Tensor reconstruction)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(reconstruction);
        if (!reference.Shape.SequenceEqual(reconstruction.Shape))
            throw new ArgumentException($"shapes differ: [{string.Join(", ", reference.Shape)}] and [{string.Join(", ", reconstruction.Shape)}]");
        using var scope = DisposeScope.Enter();
        var difference = (reconstruction.To(DType.Float64).Clamp(-1, 1) - reference.To(DType.Float64)) * 0.5;
        return difference.Square().Mean().Item();
    }

    /// <summary>PSNR in dB for images in [−1, 1] with a peak of 1 on the [0, 1] scale: 10·log10(1 / MSE); +∞ when identical.</summary>
    public static double Psnr(Tensor reference, Tensor reconstruction) => PsnrOf(MeanSquaredError(reference, reconstruction));

    /// <summary>10·log10(1 / <paramref name="mse"/>).</summary>
    public static double PsnrOf(double mse) => mse <= 0 ? double.PositiveInfinity : 10 * Math.Log10(1 / mse);

    /// <summary>
    /// PSNR of the first <paramref name="count"/> images of <paramref name="data"/> reconstructed through
    /// the posterior mean (the mode, as `ldm vae roundtrip` does), over the pooled squared error.
    /// </summary>
    public static double TestPsnr(AutoencoderKL vae, FashionColours data, int count, int batchSize = 200, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(vae);
        ArgumentNullException.ThrowIfNull(data);
        count = Math.Min(count, data.Count);
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), "at least one image");
        using var noGrad = Autograd.NoGrad();
        var device = vae.Parameters().First().Device;
        double sum = 0;
        for (int start = 0; start < count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = DisposeScope.Enter();
            var n = Math.Min(batchSize, count - start);
            var indices = Enumerable.Range(start, n).ToArray();
            var images = data.Images(indices).To(device);
            var reconstruction = vae.Forward(images).To(Device.CPU);
            sum += MeanSquaredError(images.To(Device.CPU), reconstruction) * n;
        }
        return PsnrOf(sum / count);
    }

    /// <summary>
    /// 1 / std of latents z ~ q(z | x) over <paramref name="images"/> (all elements pooled), LDM's
    /// rescaling that gives the diffusion model latents of unit variance.
    /// </summary>
    public static double ScalingFactor(AutoencoderKL vae, Tensor images, Generator random, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(vae);
        ArgumentNullException.ThrowIfNull(images);
        using var noGrad = Autograd.NoGrad();
        var device = vae.Parameters().First().Device;
        double sum = 0, sumSquares = 0;
        long n = 0;
        var count = images.Size(0);
        for (long start = 0; start < count; start += batchSize)
        {
            using var scope = DisposeScope.Enter();
            var batch = images.Narrow(0, start, Math.Min(batchSize, count - start)).To(device);
            using var posterior = vae.Encode(batch);
            var noise = TrainingRandom.RandnLike(posterior.Mean, random);
            var z = posterior.Sample(noise).To(Device.CPU, DType.Float64).Contiguous();
            var values = z.ToArray<double>();
            foreach (var v in values)
            {
                sum += v;
                sumSquares += v * v;
            }
            n += values.Length;
        }
        var mean = sum / n;
        var variance = (sumSquares - n * mean * mean) / (n - 1);
        return 1 / Math.Sqrt(variance);
    }
}

using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion.Preview;

/// <summary>
/// A cheap preview through an <see cref="AutoencoderTiny"/> whose latent space matches the pipeline's
/// (TAESD for Stable Diffusion 1.x/2.x). TAESD decodes the pipeline's scaled latents directly, which is
/// why diffusers gives it scaling_factor 1: latents / scaling_factor − shift_factor, as for any VAE.
/// </summary>
public sealed class TinyAutoencoderPreviewDecoder(AutoencoderTiny autoencoder) : IPreviewDecoder
{
    public AutoencoderTiny Autoencoder { get; } = autoencoder;

    public RgbImage Decode(Tensor latents)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var parameter = Autoencoder.Parameters().First();
        var z = latents.To(parameter.Device, parameter.DType) / Autoencoder.Config.ScalingFactor + Autoencoder.Config.ShiftFactor;
        var pixels = (Autoencoder.Decode(z).To(DType.Float32) / 2 + 0.5).Clamp(0, 1);
        return RgbImage.FromUnitTensor(pixels)[0];
    }
}

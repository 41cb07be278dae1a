using LatentDiffusion.Autoencoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Engines;

/// <summary>
/// The image ↔ latent codec of a latent pipeline (diffusers' pipe.vae), whatever runs it. Pixels are [n, 3, H, W] in
/// [−1, 1]; latents here are the VAE's own (unscaled) ones, <see cref="ScaleLatents"/> maps them to the diffusion space.
/// </summary>
public interface IAutoencoder : IDisposable
{
    /// <summary>Spatial down-sampling factor (diffusers' vae_scale_factor).</summary>
    int DownscaleFactor { get; }

    /// <summary>Latent channels.</summary>
    int LatentChannels { get; }

    /// <summary>The dtype it runs in (float32 for a force_upcast VAE in a half-precision pipeline).</summary>
    DType DType { get; }

    /// <summary>The posterior q(z | x).</summary>
    DiagonalGaussianDistribution Encode(Tensor pixels);

    /// <summary>Latents → pixels in about [−1, 1].</summary>
    Tensor Decode(Tensor latents);

    /// <summary>(z − shift_factor) · scaling_factor.</summary>
    Tensor ScaleLatents(Tensor z);

    /// <summary>latents / scaling_factor + shift_factor.</summary>
    Tensor UnscaleLatents(Tensor latents);

    /// <summary>Peak bytes of decoding <paramref name="images"/> images of the given size (a guard, not a profile).</summary>
    double EstimateDecodeBytes(long height, long width, long images, bool fusedAttention);
}

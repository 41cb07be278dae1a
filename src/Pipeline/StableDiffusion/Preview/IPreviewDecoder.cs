using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion.Preview;

/// <summary>
/// Turns the sampler's current estimate of the clean latents into a picture while the generation
/// runs (AUTOMATIC1111's live preview). Exactness is traded for speed: the pipeline's own VAE is
/// exact but costs a full decode; a tiny autoencoder (TAESD family) trained for the same latent
/// space is a fraction of that.
/// </summary>
public interface IPreviewDecoder
{
    /// <summary>The image of <paramref name="latents"/> [1, C, h, w], in the pipeline's scaled latent space (scaling_factor · z).</summary>
    RgbImage Decode(Tensor latents);
}

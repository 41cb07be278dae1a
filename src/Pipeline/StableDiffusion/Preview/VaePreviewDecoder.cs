using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion.Preview;

/// <summary>The exact preview: the pipeline's own VAE decode (the default; cheap for small models, a full decode for Stable Diffusion).</summary>
public sealed class VaePreviewDecoder(StableDiffusionPipeline pipeline) : IPreviewDecoder
{
    public RgbImage Decode(Tensor latents)
    {
        using var pixels = pipeline.Decode(latents);
        return RgbImage.FromUnitTensor(pixels)[0];
    }
}

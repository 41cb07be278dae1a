using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Ddpm;

/// <summary>diffusers' UNet2DModel (from src/LatentUNet, once it is on main).</summary>
public static class UNet2DDenoiser
{
    public static PixelDenoiser Create(string configJson, string source, Generator? generator) =>
        throw new NotSupportedException($"{source}: the unet2d model type needs UNet2DModel, which this build does not have yet");
}

using LatentDiffusion.LatentUNet;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Training.Ldm;

/// <summary>
/// The trained part of a text-to-image model: the conditional U-Net and the CLIP text encoder as the
/// children "unet" and "text_encoder" of one module, so the trainer's optimiser, EMA and checkpoints
/// cover both (the frozen VAE stays outside).
/// </summary>
public sealed class TextToImageModel : Module
{
    public UNet2DConditionModel Unet { get; }
    public ClipTextModel TextEncoder { get; }

    public TextToImageModel(UNet2DConditionModel unet, ClipTextModel textEncoder)
    {
        Unet = RegisterModule("unet", unet);
        TextEncoder = RegisterModule("text_encoder", textEncoder);
    }

    /// <summary>ε̂ = unet(x_t, t, text_encoder(ids)): <paramref name="inputIds"/> [B, L] int64.</summary>
    public Tensor PredictNoise(Tensor noisyLatents, Tensor timesteps, Tensor inputIds)
    {
        using var hidden = TextEncoder.EncodePrompt(inputIds);
        return Unet.Forward(noisyLatents, timesteps, hidden);
    }
}

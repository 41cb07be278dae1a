using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Engines;

/// <summary>
/// The noise-predicting network of a latent pipeline (diffusers' pipe.unet), whatever runs it: a libtorch
/// <see cref="LatentUNet.UNet2DConditionModel"/> (<see cref="TorchDenoiser"/>) or an ONNX Runtime session. The
/// one denoising loop talks to it through this interface only.
/// </summary>
public interface IDenoiser : IDisposable
{
    /// <summary>Channels of the latents it denoises (its input may be wider: an inpainting U-Net takes 9).</summary>
    int LatentChannels { get; }

    /// <summary>Channels of the sample it takes (config in_channels).</summary>
    int InChannels { get; }

    /// <summary>The latent size it was trained at, [height, width] (config sample_size), or null when unknown.</summary>
    int[]? SampleSize { get; }

    /// <summary>ε (or v, or x₀: the scheduler's prediction_type) for <paramref name="sample"/> at <paramref name="timestep"/>.</summary>
    Tensor Forward(Tensor sample, double timestep, DenoiserConditioning conditioning);

    /// <summary>Peak bytes of one forward on <paramref name="rows"/> samples of the given latent size (a guard, not a profile).</summary>
    double EstimateStepBytes(long latentHeight, long latentWidth, long rows, int elementSize, AttentionCost attention);
}

/// <summary>
/// What conditions one denoiser call (diffusers' unet(…) keyword arguments): the text embeddings for cross-attention,
/// batched like the sample ([uncond; cond] under classifier-free guidance); a ControlNet's residuals, added to the skip
/// connections (one per down-block state, conv_in's first) and to the mid block's output (both or neither).
/// </summary>
/// <param name="TextEmbeds">SDXL (added_cond_kwargs["text_embeds"]): the pooled text embeddings [N, d], batched like the sample.</param>
/// <param name="TimeIds">SDXL (added_cond_kwargs["time_ids"]): the size / crop (/ aesthetic score) conditioning [N, k].</param>
/// <param name="DownBlockAdditionalResiduals">ControlNet: residuals added to the U-Net's skip connections.</param>
/// <param name="MidBlockAdditionalResidual">ControlNet: residual added to the mid block's output.</param>
public sealed record DenoiserConditioning(Tensor EncoderHiddenStates, Tensor? TextEmbeds = null, Tensor? TimeIds = null,
    IReadOnlyList<Tensor>? DownBlockAdditionalResiduals = null, Tensor? MidBlockAdditionalResidual = null)
{
    /// <summary>The ControlNet residuals as the U-Net takes them; null when there are none, one line when only half is given.</summary>
    public UNetResiduals? AdditionalResiduals => (DownBlockAdditionalResiduals, MidBlockAdditionalResidual) switch
    {
        (null, null) => null,
        ({ } down, { } mid) => new UNetResiduals(down, mid),
        _ => throw new ArgumentException("ControlNet residuals need both the down-block residuals and the mid-block residual"),
    };
}

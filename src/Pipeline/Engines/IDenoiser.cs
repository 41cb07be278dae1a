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
/// batched like the sample ([uncond; cond] under classifier-free guidance).
/// </summary>
/// <param name="TextEmbeds">SDXL (added_cond_kwargs["text_embeds"]): the pooled text embeddings [N, d], batched like the sample.</param>
/// <param name="TimeIds">SDXL (added_cond_kwargs["time_ids"]): the size / crop (/ aesthetic score) conditioning [N, k].</param>
public sealed record DenoiserConditioning(Tensor EncoderHiddenStates, Tensor? TextEmbeds = null, Tensor? TimeIds = null);

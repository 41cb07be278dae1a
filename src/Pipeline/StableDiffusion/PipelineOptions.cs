using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>How to load and run a Stable Diffusion model.</summary>
public sealed record PipelineOptions
{
    public Device Device { get; init; } = Device.CPU;

    /// <summary>Compute dtype of the U-Net and text encoder (the VAE follows unless it asks to stay fp32: force_upcast).</summary>
    public DType DType { get; init; } = DType.Float32;

    /// <summary>Weight-file variant to prefer, e.g. "fp16" for diffusion_pytorch_model.fp16.safetensors.</summary>
    public string? Variant { get; init; }

    /// <summary>Attention computed in slices of this many heads×batch rows (less memory, a little slower); null = all at once.</summary>
    public int? AttentionSliceSize { get; init; }

    /// <summary>Decode (and encode) large images tile by tile, blending the seams as diffusers does.</summary>
    public bool VaeTiling { get; init; }

    /// <summary>Decode a batch one image at a time.</summary>
    public bool VaeSlicing { get; init; }

    /// <summary>
    /// Bytes a request may plan for (<see cref="Memory.BatchPlan"/>); null: what the device has available when the request
    /// starts (MemAvailable on Linux, the CUDA device's free memory).
    /// </summary>
    public long? MemoryLimit { get; init; }

    /// <summary>Single-file checkpoints: override the inferred family / prediction type.</summary>
    public CheckpointKind? CheckpointKind { get; init; }

    /// <summary>
    /// Single-file checkpoints: a diffusers folder whose unet/, vae/, text_encoder/, scheduler/ configs
    /// (and tokenizer/) describe the checkpoint, instead of the family's built-in configs (diffusers' <c>config=</c>).
    /// </summary>
    public string? ConfigSource { get; init; }

    /// <summary>
    /// Single-file checkpoints carry no tokenizer: a transformers tokenizer/ folder or OpenAI's
    /// bpe_simple_vocab_16e6.txt.gz. Defaults to a tokenizer/ folder beside the checkpoint, then LDM_CLIP_TOKENIZER.
    /// </summary>
    public string? TokenizerPath { get; init; }
}

using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Engines;

/// <summary>The libtorch engine's denoiser: a <see cref="UNet2DConditionModel"/>.</summary>
public sealed class TorchDenoiser(UNet2DConditionModel unet) : IDenoiser
{
    public UNet2DConditionModel Module { get; } = unet;
    public int LatentChannels => Module.Config.OutChannels;
    public int InChannels => Module.Config.InChannels;
    public int[]? SampleSize => Module.Config.SampleSize?.PerBlock(2, "sample_size");

    public Tensor Forward(Tensor sample, double timestep, DenoiserConditioning conditioning) =>
        Module.Forward(sample, timestep, conditioning.EncoderHiddenStates, added: AddedConditionsOf(conditioning),
            additionalResiduals: conditioning.AdditionalResiduals);

    // SDXL's pooled embeddings and time ids go together; one without the other is a caller's mistake, not a silent default.
    private static AddedConditions? AddedConditionsOf(DenoiserConditioning c) => (c.TextEmbeds, c.TimeIds) switch
    {
        (null, null) => null,
        ({ } text, { } ids) => new AddedConditions(text, ids),
        _ => throw new ArgumentException("SDXL conditioning needs both the pooled text embeddings and the time ids"),
    };

    public double EstimateStepBytes(long latentHeight, long latentWidth, long rows, int elementSize, AttentionCost attention) =>
        MemoryEstimate.LatentUNetStep(Module.Config, latentHeight, latentWidth, rows, elementSize, attention);

    public void Dispose() => Module.Dispose();
}

/// <summary>The libtorch engine's autoencoder: an <see cref="AutoencoderKL"/>.</summary>
public sealed class TorchAutoencoder(AutoencoderKL vae, DType dtype) : IAutoencoder
{
    public AutoencoderKL Module { get; } = vae;
    public int DownscaleFactor => Module.Config.DownscaleFactor;
    public int LatentChannels => Module.Config.LatentChannels;
    public DType DType { get; } = dtype;
    public DiagonalGaussianDistribution Encode(Tensor pixels) => Module.Encode(pixels);
    public Tensor Decode(Tensor latents) => Module.Decode(latents);
    public Tensor ScaleLatents(Tensor z) => Module.ScaleLatents(z);
    public Tensor UnscaleLatents(Tensor latents) => Module.UnscaleLatents(latents);

    public double EstimateDecodeBytes(long height, long width, long images, bool fusedAttention) =>
        MemoryEstimate.VaeDecode(Module.Config, height, width, images, DType.ElementSize(), Module.UseTiling, Module.UseSlicing, fusedAttention);

    public void Dispose() => Module.Dispose();
}

/// <summary>The libtorch engine's text encoder: a <see cref="ClipTextModel"/>.</summary>
public sealed class TorchTextEncoder(ClipTextModel model) : ITextEncoder
{
    public ClipTextModel Module { get; } = model;
    public int NumLayers => Module.NumLayers;

    public Tensor EncodePrompt(Tensor inputIds, Tensor? weights, int skippedLayers) =>
        weights is null ? Module.EncodePrompt(inputIds, skippedLayers) : Module.EncodeWeighted(inputIds, weights, skippedLayers);

    public ClipHiddenState EncodeHiddenState(Tensor inputIds, Tensor? weights, int skippedLayers, bool pooled) =>
        Module.EncodeHiddenState(inputIds, skippedLayers, weights, pooled);

    public void Dispose() => Module.Dispose();
}

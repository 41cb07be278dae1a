namespace LatentDiffusion.Pipeline.Engines;

/// <summary>The networks of a latent pipeline, engine-neutral; disposing disposes them all.</summary>
/// <param name="TextEncoder2">SDXL's second text encoder (OpenCLIP ViT-bigG, with projection: the pooled embeddings); null otherwise.</param>
public sealed record PipelineModels(ITextEncoder TextEncoder, IDenoiser Denoiser, IAutoencoder Autoencoder, ITextEncoder? TextEncoder2 = null) : IDisposable
{
    public void Dispose()
    {
        Denoiser.Dispose();
        TextEncoder.Dispose();
        TextEncoder2?.Dispose();
        Autoencoder.Dispose();
    }
}

namespace LatentDiffusion.Pipeline.Engines;

/// <summary>The three networks of a latent pipeline, engine-neutral; disposing disposes them all.</summary>
public sealed record PipelineModels(ITextEncoder TextEncoder, IDenoiser Denoiser, IAutoencoder Autoencoder) : IDisposable
{
    public void Dispose()
    {
        Denoiser.Dispose();
        TextEncoder.Dispose();
        Autoencoder.Dispose();
    }
}

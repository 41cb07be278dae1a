using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Ldm;

namespace LatentDiffusion.Training.Lora;

/// <summary>
/// LoRA fine-tuning of a frozen Stable Diffusion model: the loss is text-to-image training's (<see cref="LdmTask"/>: ε-prediction
/// on the VAE's latents of the captioned images), but only the adapters of <see cref="Network"/> train; every weight of the base
/// model stays as loaded. Sample grids run the pipeline with the adapters attached; the export is the kohya-format file.
/// </summary>
public sealed class LoraTask : ITrainingTask, IDisposable
{
    private readonly StableDiffusionPipeline pipeline;
    private readonly LdmTask loss;

    public LoraNetwork Network { get; }

    /// <summary>The frozen U-Net and text encoder, which run the adapters beside their layers (the training forward).</summary>
    public TextToImageModel Base => loss.Network;
    public string Name { get; }
    public Module Model => Network;

    public LoraTask(StableDiffusionPipeline pipeline, LoraNetwork network, LdmTask loss, string name)
    {
        this.pipeline = pipeline;
        this.loss = loss;
        Network = network;
        Name = name;
        foreach (var p in pipeline.Unet.Parameters().Concat(pipeline.TextEncoder.Parameters()).Concat(pipeline.Vae.Parameters())) p.RequiresGrad = false;
        network.Attach();
    }

    /// <summary>The file <see cref="SaveModel"/> writes into its folder.</summary>
    public string FileName => Name + ".safetensors";

    public Tensor ComputeLoss(Batch batch, Generator random) => loss.ComputeLoss(batch, random);

    public string? WriteSamples(string directory, long step, Generator random, CancellationToken cancellationToken) =>
        loss.WriteSamples(directory, step, random, cancellationToken);

    public void SaveModel(string directory)
    {
        Directory.CreateDirectory(directory);
        Network.Save(Path.Combine(directory, FileName));
    }

    public void Dispose()
    {
        Network.Detach();
        Network.Dispose();
        // The loss task owns its noise schedule and disposes the base modules too (a module's Dispose runs once).
        loss.Dispose();
        pipeline.Dispose();
    }
}

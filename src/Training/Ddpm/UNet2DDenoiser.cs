using LatentDiffusion.LatentUNet;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Training.Ddpm;

/// <summary>diffusers' UNet2DModel: the export loads in diffusers' DDPMPipeline as it is.</summary>
public sealed class UNet2DDenoiser(UNet2DModel model) : PixelDenoiser
{
    public UNet2DModel Model { get; } = model;
    public override Module Module => Model;
    public override int Channels => Model.Config.InChannels;

    public override int SampleSize => Model.Config.SampleSize is { IsList: false } size ? size.Value
        : throw new ConfigException("UNet2DModel config: 'sample_size' must be one number for pixel DDPM training");

    /// <summary>Every down block but the last halves the resolution (diffusers' is_final_block).</summary>
    public override int DownsamplingFactor => 1 << (Model.Config.DownBlockTypes.Length - 1);

    public override (string Library, string ClassName) IndexEntry => ("diffusers", UNet2DModelConfig.ClassName);
    public override Tensor Predict(Tensor sample, Tensor timesteps) => Model.Forward(sample, timesteps);
    public override void Save(string directory) => Model.Save(directory);

    /// <summary>
    /// Builds a UNet2DModel from its config.json text, its initial weights drawn from a generator seeded with
    /// <paramref name="seed"/>.
    /// </summary>
    public static UNet2DDenoiser Create(string configJson, string source, ulong seed)
    {
        var config = ConfigJson.Parse<UNet2DModelConfig>(configJson, source);
        config.Validate(source);
        if (config.InChannels != config.OutChannels)
            throw new ConfigException($"{source}: in_channels ({config.InChannels}) and out_channels ({config.OutChannels}) must be equal: the model predicts the noise of its input");
        if (config.SampleSize is null or { IsList: true })
            throw new ConfigException($"{source}: 'sample_size' must be one number (the training resolution)");
        using var generator = new Generator(seed);
        return new UNet2DDenoiser(new UNet2DModel(config, generator));
    }
}

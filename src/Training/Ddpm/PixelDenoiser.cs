using LatentDiffusion.LatentUNet.ConvNeXt;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Training.Ddpm;

/// <summary>A noise predictor ε(x_t, t) on pixels, whichever U-Net implements it.</summary>
public abstract class PixelDenoiser : IDisposable
{
    public abstract Module Module { get; }

    /// <summary>Image channels in and out.</summary>
    public abstract int Channels { get; }

    /// <summary>The resolution the model is configured for (config sample_size).</summary>
    public abstract int SampleSize { get; }

    /// <summary>Heights and widths must be multiples of this.</summary>
    public abstract int DownsamplingFactor { get; }

    /// <summary>("diffusers", "UNet2DModel") for model_index.json; ours for a class diffusers lacks.</summary>
    public abstract (string Library, string ClassName) IndexEntry { get; }

    /// <summary>Whether diffusers' DDPMPipeline can load the exported folder.</summary>
    public bool IsDiffusersCompatible => IndexEntry.Library == "diffusers";

    public abstract Tensor Predict(Tensor sample, Tensor timesteps);

    /// <summary>Writes config.json and diffusion_pytorch_model.safetensors into <paramref name="directory"/>.</summary>
    public abstract void Save(string directory);

    private static ConvNeXtDenoiser CreateConvNeXt(string configJson, string source, ulong seed)
    {
        var config = ConfigJson.Parse<ConvNeXtUNetConfig>(configJson, source).Validate(source);
        using var generator = new Generator(seed);
        return new ConvNeXtDenoiser(new ConvNeXtUNet(config, generator));
    }

    public void Dispose()
    {
        Module.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Builds the model a recipe names: "convnext" (ConvNeXtUNet config) or "unet2d" (diffusers' UNet2DModel config).</summary>
    /// <remarks>The initial weights are drawn from a generator seeded with <paramref name="seed"/>.</remarks>
    public static PixelDenoiser Create(string type, string configJson, string source, ulong seed) => type switch
    {
        "convnext" => CreateConvNeXt(configJson, source, seed),
        "unet2d" => UNet2DDenoiser.Create(configJson, source, seed),
        _ => throw new ArgumentException($"{source}: unknown model type '{type}' (use \"convnext\" or \"unet2d\")"),
    };
}

/// <summary>The write-up's ConvNeXt U-Net; diffusers has no such class, so the export is our own layout.</summary>
public sealed class ConvNeXtDenoiser(ConvNeXtUNet model) : PixelDenoiser
{
    public ConvNeXtUNet Model { get; } = model;
    public override Module Module => Model;
    public override int Channels => Model.Config.Channels;
    public override int SampleSize => Model.Config.SampleSize;
    public override int DownsamplingFactor => Model.Config.DownsamplingFactor;
    public override (string Library, string ClassName) IndexEntry => ("LatentDiffusion.NET", ConvNeXtUNetConfig.ClassName);
    public override Tensor Predict(Tensor sample, Tensor timesteps) => Model.Forward(sample, timesteps);
    public override void Save(string directory) => Model.Save(directory);
}

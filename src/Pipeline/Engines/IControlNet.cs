using LatentDiffusion.LatentUNet;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Engines;

/// <summary>
/// A ControlNet of a latent pipeline (diffusers' pipe.controlnet), whatever runs it: latents, timestep, text states and
/// the control image [n, 3, H, W] in [0, 1] → the residuals the denoiser adds to its skip connections and mid block.
/// </summary>
public interface IControlNet : IDisposable
{
    /// <summary>Name recorded in the PNG parameters (the folder or file name).</summary>
    string Name { get; }

    /// <summary>Its global_pool_conditions: diffusers then always runs it in guess mode (shuffle ControlNets).</summary>
    bool GlobalPoolConditions { get; }

    /// <summary>The residuals, each multiplied by <paramref name="conditioningScale"/> (guess mode: by a log ramp up to it).</summary>
    UNetResiduals Forward(Tensor sample, double timestep, Tensor encoderHiddenStates, Tensor controlImage, double conditioningScale, bool guessMode);

    /// <summary>Peak bytes of one forward on <paramref name="rows"/> samples of the given latent size (a guard, not a profile).</summary>
    double EstimateStepBytes(long latentHeight, long latentWidth, long rows, int elementSize, AttentionCost attention);

    /// <summary>Refuses, in one line, a ControlNet that cannot steer <paramref name="denoiser"/> (another base model's).</summary>
    void CheckFits(IDenoiser denoiser);
}

/// <summary>The libtorch engine's ControlNet: a <see cref="ControlNetModel"/>.</summary>
public sealed class TorchControlNet(ControlNetModel model, string name) : IControlNet
{
    public ControlNetModel Module { get; } = model;
    public string Name { get; } = name;
    public bool GlobalPoolConditions => Module.Config.GlobalPoolConditions;

    public UNetResiduals Forward(Tensor sample, double timestep, Tensor encoderHiddenStates, Tensor controlImage, double conditioningScale, bool guessMode) =>
        Module.Forward(sample, timestep, encoderHiddenStates, controlImage, conditioningScale, guessMode);

    // the estimate of the U-Net whose encoder it copies: an upper bound (it has no decoder half)
    public double EstimateStepBytes(long latentHeight, long latentWidth, long rows, int elementSize, AttentionCost attention) =>
        MemoryEstimate.LatentUNetStep(Module.Config.AsUNetConfig(), latentHeight, latentWidth, rows, elementSize, attention);

    public void CheckFits(IDenoiser denoiser)
    {
        if (denoiser is TorchDenoiser torch) Module.Config.CheckFits(torch.Module.Config, Name);
        else if (denoiser.LatentChannels != Module.Config.InChannels)
            throw new ArgumentException($"{Name}: it takes {Module.Config.InChannels}-channel latents but the model denoises {denoiser.LatentChannels}-channel ones: it was made for another base model");
    }

    public void Dispose() => Module.Dispose();
}

using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Noise;

/// <summary>
/// Where the random normal noise of a generation comes from: initial latents, the variance noise a
/// scheduler adds in <c>Step</c>, image-to-image noise. Every draw goes through one source, in a fixed
/// order, so a seeded source reproduces a run and a test can inject the exact tensors diffusers drew.
/// </summary>
public interface INoiseSource
{
    /// <summary>
    /// The next tensor of standard normal noise with this shape, element type and device. The caller
    /// owns the result (it is registered in the caller's current <see cref="DisposeScope"/>).
    /// </summary>
    Tensor Next(long[] shape, DType dtype, Device device);
}

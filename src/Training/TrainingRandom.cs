using LatentDiffusion.Torch;

namespace LatentDiffusion.Training;

/// <summary>
/// Random draws for training tasks: always from the trainer's CPU generator, then moved to the
/// target device (as diffusers' randn_tensor does), so a seed gives the same numbers on any device
/// and a CUDA run can resume from a CPU checkpoint's generator state.
/// </summary>
public static class TrainingRandom
{
    public static Tensor Randn(long[] shape, Generator random, Device device, DType dtype = DType.Float32)
    {
        var drawn = Tensors.Randn(shape, random, dtype);
        if (device.Type == DeviceType.Cpu) return drawn;
        using (drawn) return drawn.To(device);
    }

    public static Tensor RandnLike(Tensor like, Generator random) => Randn(like.Shape, random, like.Device, like.DType);

    /// <summary>Integers in [low, high) (int64), drawn on the CPU and moved to <paramref name="device"/>.</summary>
    public static Tensor Randint(long low, long high, long[] shape, Generator random, Device device)
    {
        var drawn = Tensors.Randint(low, high, shape, random);
        if (device.Type == DeviceType.Cpu) return drawn;
        using (drawn) return drawn.To(device);
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

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

    /// <summary>
    /// Per-sample draws of a batch that may be a data-parallel rank's <paramref name="shard"/>: the rows of the
    /// whole global batch are drawn and this rank's are kept, so N ranks together draw exactly what one process
    /// with the global batch draws, and every rank's generator stays in step. The whole batch: as <see cref="RandnLike"/>.
    /// </summary>
    public static Tensor RandnLike(Tensor like, Generator random, BatchShard shard)
    {
        if (shard.IsWhole(like.Size(0))) return RandnLike(like, random);
        var shape = like.Shape;
        var local = shape[0];
        shape[0] = shard.GlobalCount;
        using var all = Randn(shape, random, like.Device, like.DType);
        return all.Narrow(0, shard.Offset, local);
    }

    /// <summary>Integers in [low, high) for each of <paramref name="count"/> samples of <paramref name="shard"/> (see <see cref="RandnLike(Tensor, Generator, BatchShard)"/>).</summary>
    public static Tensor Randint(long low, long high, long count, Generator random, Device device, BatchShard shard)
    {
        if (shard.IsWhole(count)) return Randint(low, high, [count], random, device);
        using var all = Randint(low, high, [shard.GlobalCount], random, device);
        return all.Narrow(0, shard.Offset, count);
    }
}

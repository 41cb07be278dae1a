using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Noise;

/// <summary>
/// Returns given tensors in order (for tests: the <c>noise.NNN</c> tensors a golden recorded where
/// diffusers drew noise). A request whose shape differs from the next tensor's, or one made after the
/// queue is empty, throws: a scheduler that draws at a different place than diffusers fails loudly.
/// The tensors stay owned by the caller; each draw returns a new handle (or a converted copy when the
/// dtype or device differs).
/// </summary>
public sealed class QueueNoise : INoiseSource
{
    private readonly Queue<Tensor> queue;

    public QueueNoise(IEnumerable<Tensor> tensors) => queue = new Queue<Tensor>(tensors);

    public QueueNoise(params Tensor[] tensors) : this((IEnumerable<Tensor>)tensors) { }

    /// <summary>Tensors not yet drawn.</summary>
    public int Remaining => queue.Count;

    /// <summary>Number of tensors drawn so far.</summary>
    public int Drawn { get; private set; }

    public Tensor Next(long[] shape, DType dtype, Device device)
    {
        if (!queue.TryDequeue(out var next))
            throw new InvalidOperationException($"noise queue exhausted: draw #{Drawn} of shape [{string.Join(", ", shape)}] was requested but only {Drawn} tensors were given");
        var actual = next.Shape;
        if (!actual.AsSpan().SequenceEqual(shape))
            throw new InvalidOperationException($"noise draw #{Drawn}: requested shape [{string.Join(", ", shape)}] but the queued tensor has shape [{string.Join(", ", actual)}]");
        Drawn++;
        return next.DType == dtype && next.Device == device ? next.Alias() : next.To(device, dtype, copy: true);
    }
}

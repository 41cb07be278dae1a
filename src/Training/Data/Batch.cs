using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// One batch of training data, produced on the loader thread and owned by the training step that
/// consumes it (the trainer disposes it). Its tensors belong to no <see cref="DisposeScope"/>.
/// </summary>
public sealed class Batch : IDisposable
{
    /// <summary>The samples: images [B, C, H, W] scaled to [−1, 1], or points [B, D].</summary>
    public Tensor Data { get; }

    /// <summary>Class labels [B] (int64), where the dataset has them.</summary>
    public Tensor? Labels { get; }

    /// <summary>One caption per sample, where the dataset has them (captioned folders).</summary>
    public IReadOnlyList<string>? Captions { get; }

    public int Count => (int)Data.Size(0);

    /// <summary>Which rows of the global batch these are, in data-parallel training (the whole batch otherwise).</summary>
    public BatchShard Shard { get; internal set; }

    public Batch(Tensor data, Tensor? labels = null, IReadOnlyList<string>? captions = null)
    {
        Data = data.DetachFromDisposeScope();
        Labels = labels?.DetachFromDisposeScope();
        Captions = captions;
    }

    /// <summary>A copy on <paramref name="device"/> (the trainer moves each batch to the model's device).</summary>
    public Batch To(Device device) => new(Data.To(device), Labels?.To(device), Captions) { Shard = Shard };

    public void Dispose()
    {
        Data.Dispose();
        Labels?.Dispose();
    }
}

/// <summary>
/// Rows [<see cref="Offset"/>, Offset + the batch's count) of a global batch of <see cref="GlobalCount"/>
/// (a data-parallel rank's share); the default is the whole batch.
/// </summary>
public readonly record struct BatchShard(int Offset, int GlobalCount)
{
    public bool IsWhole(long count) => GlobalCount == 0 || (Offset == 0 && GlobalCount == count);
}

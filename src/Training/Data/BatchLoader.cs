using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// Prepares batches on a background thread while the training thread computes, through a bounded
/// queue of <paramref name="prefetch"/> batches (so memory stays bounded when the model is the
/// slower side). Batches come out in order from <paramref name="firstBatch"/> on; an exception in the
/// dataset surfaces from <see cref="Next"/>. Disposing stops the thread and frees the queued batches.
/// In data-parallel training each rank loads only its shard of every batch (<see cref="SampleOrder.Shard"/>).
/// </summary>
public sealed class BatchLoader : IDisposable
{
    private readonly BlockingCollection<Batch> queue;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread thread;
    private Exception? failure;
    private bool disposed;

    public BatchLoader(IDataset dataset, SampleOrder order, long firstBatch, int prefetch = 4, int rank = 0, int worldSize = 1)
    {
        if (prefetch < 1) throw new ArgumentOutOfRangeException(nameof(prefetch), prefetch, "at least one batch must be prefetched");
        queue = new BlockingCollection<Batch>(prefetch);
        thread = new Thread(() => Produce(dataset, order, firstBatch, rank, worldSize)) { IsBackground = true, Name = "batch loader" };
        thread.Start();
    }

    private void Produce(IDataset dataset, SampleOrder order, long batch, int rank, int worldSize)
    {
        try
        {
            for (; !stop.IsCancellationRequested; batch++)
            {
                var (indices, shard) = order.Shard(batch, rank, worldSize);
                var b = dataset.GetBatch(indices, order.AugmentationSeed(batch), shard.Offset);
                b.Shard = shard;
                try
                {
                    queue.Add(b, stop.Token);
                }
                catch (OperationCanceledException)
                {
                    b.Dispose();
                    return;
                }
            }
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            queue.CompleteAdding();
        }
    }

    /// <summary>The next batch (the caller owns it); waits for the loader when it is behind.</summary>
    public Batch Next(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (queue.TryTake(out var ready)) return ready;
        try
        {
            return queue.Take(cancellationToken);
        }
        catch (InvalidOperationException) when (queue.IsAddingCompleted)
        {
            // Rethrown with its original stack trace: the dataset's own error names the file and problem.
            if (failure is not null) ExceptionDispatchInfo.Capture(failure).Throw();
            throw new InvalidOperationException("the batch loader stopped");
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        stop.Cancel();
        // Unblock a producer waiting on a full queue, then free whatever it had queued.
        while (queue.TryTake(out var b)) b.Dispose();
        thread.Join();
        while (queue.TryTake(out var b)) b.Dispose();
        queue.Dispose();
        stop.Dispose();
    }
}

using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.Distributed;

/// <summary>The communication library behind a <see cref="ProcessGroup"/>.</summary>
public enum Backend
{
    /// <summary>Gloo: CPU tensors, TCP; what torch.distributed uses on CPU.</summary>
    Gloo = 0,

    /// <summary>NCCL: CUDA tensors; only where libtorch was built with it (<see cref="ProcessGroup.HasNccl"/>).</summary>
    Nccl = 1,
}

/// <summary>
/// The ranks of a data-parallel run (c10d's ProcessGroupGloo, or ProcessGroupNCCL), and the collectives the
/// trainer needs: all-reduce (sum or average) and broadcast on lists of tensors flattened into buckets of
/// about <see cref="DefaultBucketBytes"/> (as DDP), and a barrier. Creating the group waits until every rank
/// has arrived with the same world size. Every call is bounded by the timeout: a peer that died or never
/// answers makes it throw a <see cref="RankLostException"/> naming the rank, never hang.
/// </summary>
public sealed class ProcessGroup : IDisposable
{
    /// <summary>DDP's default bucket_cap_mb (25 MiB).</summary>
    public const long DefaultBucketBytes = 25L << 20;

    // Heartbeats are bumped every 0.5 s: three periods tell a stopped rank from a slow store.
    private static readonly TimeSpan HeartbeatWindow = TimeSpan.FromSeconds(1.5);

    private IntPtr handle;

    public int Rank { get; }
    public int WorldSize { get; }
    public Backend Backend { get; }
    public TimeSpan Timeout { get; }

    /// <summary>Whether this libldtorch was built with c10d's Gloo (it needs Gloo's headers at build time).</summary>
    public static bool HasGloo => (NativeMethods.DistributedBackends() & 1) != 0;

    /// <summary>Whether libtorch was built with NCCL and sees a CUDA device.</summary>
    public static bool HasNccl => (NativeMethods.DistributedBackends() & 2) != 0;

    private ProcessGroup(IntPtr handle, int rank, int worldSize, Backend backend, TimeSpan timeout)
    {
        this.handle = handle;
        Rank = rank;
        WorldSize = worldSize;
        Backend = backend;
        Timeout = timeout;
    }

    /// <summary>
    /// Joins the group of <paramref name="worldSize"/> ranks rendezvousing through <paramref name="store"/>.
    /// <paramref name="hostname"/> is the address this rank's Gloo transport binds to (null: this host's
    /// name; the environment variable GLOO_SOCKET_IFNAME overrides it, as in torch.distributed).
    /// </summary>
    public static ProcessGroup Create(Store store, int rank, int worldSize, TimeSpan timeout, Backend backend = Backend.Gloo, string? hostname = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        var h = NativeMethods.ProcessGroupNew(store.Handle, (int)backend, rank, worldSize, hostname ?? "", Store.Milliseconds(timeout));
        if (h == IntPtr.Zero) throw TorchException.FromNative("process_group");
        return new ProcessGroup(h, rank, worldSize, backend, timeout);
    }

    private IntPtr Handle => handle != IntPtr.Zero ? handle : throw new ObjectDisposedException(nameof(ProcessGroup), "the process group was shut down");

    /// <summary>Sums <paramref name="tensors"/> over all ranks in place (divided by the world size with <paramref name="average"/>).</summary>
    public unsafe void AllReduce(IReadOnlyList<Tensor> tensors, bool average = false, long bucketBytes = DefaultBucketBytes)
    {
        if (tensors.Count == 0) return;
        var handles = Tensor.Handles(tensors);
        fixed (IntPtr* p = handles) Collective(NativeMethods.AllReduce(Handle, p, handles.Length, bucketBytes, average ? 1 : 0), "all_reduce");
    }

    /// <summary>Overwrites <paramref name="tensors"/> on every rank with rank <paramref name="root"/>'s values.</summary>
    public unsafe void Broadcast(IReadOnlyList<Tensor> tensors, int root = 0, long bucketBytes = DefaultBucketBytes)
    {
        if (tensors.Count == 0) return;
        var handles = Tensor.Handles(tensors);
        fixed (IntPtr* p = handles) Collective(NativeMethods.Broadcast(Handle, p, handles.Length, root, bucketBytes), "broadcast");
    }

    /// <summary>Returns when every rank has called it.</summary>
    public void Barrier() => Collective(NativeMethods.Barrier(Handle), "barrier");

    /// <summary>The ranks that stopped answering (their heartbeat in the store did not move for 1.5 s).</summary>
    public unsafe int[] LostRanks()
    {
        var ranks = new int[WorldSize];
        int n;
        fixed (int* p = ranks) n = NativeMethods.LostRanks(Handle, (long)HeartbeatWindow.TotalMilliseconds, p, ranks.Length);
        Tensor.Check(n, "lost_ranks");
        return ranks[..Math.Min(n, ranks.Length)];
    }

    // A failed collective means a peer died, hung, or disagreed: name the lost ranks when the heartbeats tell.
    private void Collective(int status, string operation)
    {
        if (status >= 0) return;
        var failure = TorchException.FromNative(operation);
        int[] lost;
        try
        {
            lost = LostRanks();
        }
        catch (TorchException)
        {
            lost = [];
        }
        throw new RankLostException(operation, lost, WorldSize, Timeout, failure);
    }

    /// <summary>Waits for every rank (so none is still talking to this one), then leaves the group.</summary>
    public void Shutdown()
    {
        if (handle == IntPtr.Zero) return;
        try
        {
            Barrier();
        }
        finally
        {
            Dispose();
        }
    }

    public void Dispose()
    {
        if (handle == IntPtr.Zero) return;
        NativeMethods.ProcessGroupFree(handle);
        handle = IntPtr.Zero;
        GC.SuppressFinalize(this);
    }

    ~ProcessGroup()
    {
        if (handle != IntPtr.Zero) NativeMethods.ProcessGroupFree(handle);
    }
}

/// <summary>A collective failed because a rank died or stopped answering; <see cref="LostRanks"/> names it when known.</summary>
public sealed class RankLostException(string operation, IReadOnlyList<int> lostRanks, int worldSize, TimeSpan timeout, TorchException cause)
    : Exception(Describe(operation, lostRanks, worldSize, timeout, cause), cause)
{
    public IReadOnlyList<int> LostRanks { get; } = lostRanks;

    private static string Describe(string operation, IReadOnlyList<int> lost, int worldSize, TimeSpan timeout, TorchException cause)
    {
        var why = cause.Message.StartsWith(cause.Operation + ": ", StringComparison.Ordinal) ? cause.Message[(cause.Operation.Length + 2)..] : cause.Message;
        return lost.Count switch
        {
            0 => $"{operation} failed within the {timeout.TotalSeconds:0.#} s timeout, though every rank of {worldSize} still answers (one is stuck?): {why}",
            1 => $"lost rank {lost[0]} of {worldSize}: it stopped answering ({operation} failed: {why})",
            _ => $"lost ranks {string.Join(", ", lost)} of {worldSize}: they stopped answering ({operation} failed: {why})",
        };
    }
}

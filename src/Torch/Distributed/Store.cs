using System.Text;
using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.Distributed;

/// <summary>
/// c10d's key-value store, through which the ranks of a data-parallel run find each other: a TCPStore
/// served by rank 0 (torchrun's MASTER_ADDR:MASTER_PORT) or a FileStore on a file every rank can reach.
/// Every call waits at most the timeout given at creation. Outlives the <see cref="ProcessGroup"/>s made from it.
/// </summary>
public sealed class Store : IDisposable
{
    private IntPtr handle;

    public string Description { get; }
    public TimeSpan Timeout { get; }

    private Store(IntPtr handle, string description, TimeSpan timeout)
    {
        this.handle = handle;
        Description = description;
        Timeout = timeout;
    }

    internal IntPtr Handle => handle != IntPtr.Zero ? handle : throw new ObjectDisposedException(nameof(Store), "the store was closed");

    /// <summary>
    /// A TCP store at <paramref name="host"/>:<paramref name="port"/>: rank 0 (<paramref name="isMaster"/>) serves
    /// it, the others connect, retrying until <paramref name="timeout"/>. A port in use or an unreachable master is
    /// a <see cref="TorchException"/> with one line saying so.
    /// </summary>
    public static Store Tcp(string host, int port, int worldSize, bool isMaster, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        var h = NativeMethods.TcpStoreNew(host, port, worldSize, isMaster ? 1 : 0, Milliseconds(timeout));
        if (h == IntPtr.Zero) throw TorchException.FromNative("tcp_store");
        return new Store(h, $"{host}:{port}", timeout);
    }

    /// <summary>A store kept in the file <paramref name="path"/> (a shared file system for several machines).</summary>
    public static Store File(string path, int worldSize, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        var h = NativeMethods.FileStoreNew(full, worldSize, Milliseconds(timeout));
        if (h == IntPtr.Zero) throw TorchException.FromNative("file_store");
        return new Store(h, full, timeout);
    }

    public void Set(string key, string value) => Tensor.Check(NativeMethods.StoreSet(Handle, key, value), "store_set");

    /// <summary>The value of <paramref name="key"/>, waiting (up to the timeout) until some rank sets it.</summary>
    public unsafe string Get(string key)
    {
        var buffer = new byte[4096];
        int n;
        fixed (byte* p = buffer) n = NativeMethods.StoreGet(Handle, key, p, buffer.Length);
        Tensor.Check(n, "store_get");
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>Adds <paramref name="delta"/> to the counter <paramref name="key"/> (0 reads it) and returns its new value.</summary>
    public unsafe long Add(string key, long delta)
    {
        long value;
        Tensor.Check(NativeMethods.StoreAdd(Handle, key, delta, &value), "store_add");
        return value;
    }

    internal static long Milliseconds(TimeSpan timeout) =>
        timeout > TimeSpan.Zero ? (long)Math.Ceiling(timeout.TotalMilliseconds)
            : throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "the timeout must be positive");

    public void Dispose()
    {
        if (handle == IntPtr.Zero) return;
        NativeMethods.StoreFree(handle);
        handle = IntPtr.Zero;
        GC.SuppressFinalize(this);
    }

    ~Store()
    {
        if (handle != IntPtr.Zero) NativeMethods.StoreFree(handle);
    }
}

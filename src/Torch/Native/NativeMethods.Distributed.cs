using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

// Bindings for native/src/distributed.cpp.
internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_distributed_backends")] internal static partial int DistributedBackends();
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_tcp_store_new", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr TcpStoreNew(string host, int port, int worldSize, int isMaster, long timeoutMs);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_file_store_new", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr FileStoreNew(string path, int worldSize, long timeoutMs);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_store_free")] internal static partial void StoreFree(IntPtr store);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_store_set", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int StoreSet(IntPtr store, string key, string value);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_store_get", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int StoreGet(IntPtr store, string key, byte* output, int capacity);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_store_add", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int StoreAdd(IntPtr store, string key, long delta, long* value);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_process_group_new", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr ProcessGroupNew(IntPtr store, int backend, int rank, int worldSize, string hostname, long timeoutMs);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_process_group_free")] internal static partial void ProcessGroupFree(IntPtr group);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_all_reduce")] internal static partial int AllReduce(IntPtr group, IntPtr* tensors, int n, long bucketBytes, int average);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_broadcast")] internal static partial int Broadcast(IntPtr group, IntPtr* tensors, int n, int root, long bucketBytes);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_barrier")] internal static partial int Barrier(IntPtr group);
    [LibraryImport(LibTorch.Name, EntryPoint = "ld_process_group_lost_ranks")] internal static partial int LostRanks(IntPtr group, long windowMs, int* ranks, int capacity);
}

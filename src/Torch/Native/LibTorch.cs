using System.Reflection;
using System.Runtime.InteropServices;

namespace LatentDiffusion.Torch.Native;

/// <summary>
/// Finds and loads libldtorch beside the assemblies, configures the threading environment before
/// libtorch's OpenMP runtime starts, and refuses a native library built for another ABI version.
/// </summary>
internal static class LibTorch
{
    internal const string Name = "ldtorch";

    /// <summary>The ABI version this assembly was compiled against; must equal native LD_ABI_VERSION.</summary>
    internal const int AbiVersion = 11;

    /// <summary>Set to "default" to leave OMP_WAIT_POLICY alone (the benchmark compares both).</summary>
    internal const string ThreadPolicyVariable = "LDTORCH_THREAD_POLICY";

    // A library module initializer is the one place that runs before any P/Invoke of this
    // assembly can trigger the load, which is what the resolver needs.
#pragma warning disable CA2255
    [System.Runtime.CompilerServices.ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize()
    {
        NativeLibrary.SetDllImportResolver(typeof(LibTorch).Assembly, Resolve);
    }

    private static readonly object LoadLock = new();
    private static IntPtr loaded;

    // The runtime asks once per imported function, so the library is loaded and configured once
    // and the handle handed out afterwards (a second configuration would undo TorchRuntime.Threads).
    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName != Name) return IntPtr.Zero;
        lock (LoadLock)
        {
            if (loaded != IntPtr.Zero) return loaded;
            ConfigureThreadingEnvironment();
            var handle = LoadFromKnownPlaces();
            CheckAbiVersion(handle);
            SetDefaultThreads(handle);
            SetCpuCacheLimit(handle);
            return loaded = handle;
        }
    }

    // libtorch's OpenMP threads spin after each parallel region and starve OpenBLAS's own threads
    // (diffusers' U-Net step: 5.2 s spinning vs 3.1 s passive on 2 cores). The converse holds too:
    // OpenBLAS's threads keep polling (sched_yield) for 2^28 cycles, ~0.1 s, after every call, taking
    // the cores from the oneDNN convolutions and element-wise ops that follow; 2^THREAD_TIMEOUT
    // cycles is how long they wait before they sleep (the SD1.5 U-Net at 256²: 3.4 s → 2.3 s on 2 cores).
    // libgomp and OpenBLAS read these once, when loaded, so they have to be set before libldtorch is.
    private static void ConfigureThreadingEnvironment()
    {
        // c10d logs through glog to standard error ("Logging before InitGoogleLogging()", socket time-outs) what
        // it also throws, and the binding reports as one line; glog reads this once, when libtorch loads.
        SetEnv("GLOG_minloglevel", "3", overwrite: false);
        if (Environment.GetEnvironmentVariable(ThreadPolicyVariable) == "default") return;
        SetEnv("OMP_WAIT_POLICY", "PASSIVE", overwrite: false);
        SetEnv("OPENBLAS_THREAD_TIMEOUT", OpenBlasThreadTimeout, overwrite: false);
    }

    /// <summary>log2 of the cycles OpenBLAS's idle threads poll before they sleep (its minimum; its default is 28).</summary>
    internal const string OpenBlasThreadTimeout = "4";

    private static IntPtr LoadFromKnownPlaces()
    {
        var file = "lib" + Name + ".so";
        var places = new[]
        {
            Environment.GetEnvironmentVariable("LDTORCH_NATIVE"),
            Path.GetDirectoryName(typeof(LibTorch).Assembly.Location),
            AppContext.BaseDirectory,
        };
        var tried = new List<string>();
        foreach (var dir in places)
        {
            if (string.IsNullOrEmpty(dir)) continue;
            var path = File.Exists(dir) ? dir : Path.Combine(dir, file);
            if (!File.Exists(path)) { tried.Add(path); continue; }
            try { return NativeLibrary.Load(path); }
            catch (DllNotFoundException e)
            {
                throw new TorchException("load", $"{path} exists but could not be loaded (is libtorch installed? apt install libtorch-dev libopenblas0-pthread): {FirstLine(e.Message)}");
            }
        }
        throw new TorchException("load", $"{file} was not found (looked in {string.Join(", ", tried)}); build the solution with `dotnet build`, which compiles native/");
    }

    private static unsafe void CheckAbiVersion(IntPtr handle)
    {
        if (!NativeLibrary.TryGetExport(handle, "ld_abi_version", out var export))
            throw new TorchException("load", "the loaded libldtorch has no ld_abi_version: it is not this project's native library");
        CheckAbiVersion(((delegate* unmanaged<int>)export)());
    }

    /// <summary>Refuses a native library built from another version of ldtorch.h (version skew).</summary>
    internal static void CheckAbiVersion(int nativeVersion)
    {
        if (nativeVersion != AbiVersion)
            throw new TorchException("load", $"native library ABI version {nativeVersion} does not match the managed binding's {AbiVersion}; rebuild with `dotnet build` so that native/ and src/Torch come from the same commit");
    }

    // libtorch's own default can be a single thread (seen on this machine kind); use every core
    // unless the user chose with OMP_NUM_THREADS.
    private static unsafe void SetDefaultThreads(IntPtr handle)
    {
        if (Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is not null) return;
        if (NativeLibrary.TryGetExport(handle, "ld_set_num_threads", out var export))
            ((delegate* unmanaged<int, int>)export)(Environment.ProcessorCount);
    }

    // The bound of the cache of large CPU blocks (native/src/allocator.cpp), from LDTORCH_CACHE_MB.
    private static unsafe void SetCpuCacheLimit(IntPtr handle)
    {
        var bytes = CpuCache.LimitFromEnvironment(Environment.GetEnvironmentVariable(CpuCache.LimitVariable));
        if (NativeLibrary.TryGetExport(handle, "ld_cpu_cache_set_limit", out var export))
            ((delegate* unmanaged<long, int>)export)(bytes);
    }

    internal static string FirstLine(string message)
    {
        var i = message.IndexOfAny(['\r', '\n']);
        return (i < 0 ? message : message[..i]).Trim();
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnvNative(string name, string value, int overwrite);

    private static void SetEnv(string name, string value, bool overwrite)
    {
        SetEnvNative(name, value, overwrite ? 1 : 0);
        if (overwrite || Environment.GetEnvironmentVariable(name) is null)
            Environment.SetEnvironmentVariable(name, value);
    }
}

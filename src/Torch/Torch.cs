using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>Tensor creation (torch.zeros, torch.randn, …) and the libtorch runtime.</summary>
public static class Torch
{
    private static unsafe Tensor Create(ReadOnlySpan<long> shape, string op, delegate*<long*, int, int, int, int, IntPtr> create,
        DType dtype, Device? device)
    {
        var d = device ?? Device.CPU;
        fixed (long* s = shape) return new Tensor(create(s, shape.Length, (int)dtype, (int)d.Type, d.Index), op);
    }

    public static unsafe Tensor Empty(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Create(shape, "empty", &NativeMethods.Empty, dtype, device);

    public static unsafe Tensor Zeros(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Create(shape, "zeros", &NativeMethods.Zeros, dtype, device);

    public static unsafe Tensor Ones(long[] shape, DType dtype = DType.Float32, Device? device = null) =>
        Create(shape, "ones", &NativeMethods.Ones, dtype, device);

    public static unsafe Tensor Full(long[] shape, double value, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.CPU;
        fixed (long* s = shape) return new Tensor(NativeMethods.Full(s, shape.Length, value, (int)dtype, (int)d.Type, d.Index), "full");
    }

    /// <summary>A 0-dimensional tensor holding <paramref name="value"/>.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32, Device? device = null) => Full([], value, dtype, device);

    public static Tensor Arange(double end, DType? dtype = null, Device? device = null) => Arange(0, end, 1, dtype, device);

    /// <summary>[start, end) by step; like torch.arange the dtype is int64 when every bound is integral, else float32.</summary>
    public static Tensor Arange(double start, double end, double step = 1, DType? dtype = null, Device? device = null)
    {
        var d = device ?? Device.CPU;
        var inferred = dtype ?? (IsIntegral(start) && IsIntegral(end) && IsIntegral(step) ? DType.Int64 : DType.Float32);
        return new Tensor(NativeMethods.Arange(start, end, step, (int)inferred, (int)d.Type, d.Index), "arange");
    }

    private static bool IsIntegral(double v) => Math.Floor(v) == v;

    public static Tensor Linspace(double start, double end, long steps, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.CPU;
        return new Tensor(NativeMethods.Linspace(start, end, steps, (int)dtype, (int)d.Type, d.Index), "linspace");
    }

    /// <summary>Uniform samples in [0, 1).</summary>
    public static unsafe Tensor Rand(long[] shape, Generator? generator = null, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.CPU;
        fixed (long* s = shape)
            return new Tensor(NativeMethods.Rand(s, shape.Length, generator?.Live ?? IntPtr.Zero, (int)dtype, (int)d.Type, d.Index), "rand");
    }

    /// <summary>Standard normal samples; with a CPU generator, bit-identical to torch.randn.</summary>
    public static unsafe Tensor Randn(long[] shape, Generator? generator = null, DType dtype = DType.Float32, Device? device = null)
    {
        var d = device ?? Device.CPU;
        fixed (long* s = shape)
            return new Tensor(NativeMethods.Randn(s, shape.Length, generator?.Live ?? IntPtr.Zero, (int)dtype, (int)d.Type, d.Index), "randn");
    }

    /// <summary>Integers uniformly drawn from [low, high).</summary>
    public static unsafe Tensor Randint(long low, long high, long[] shape, Generator? generator = null, DType dtype = DType.Int64, Device? device = null)
    {
        var d = device ?? Device.CPU;
        fixed (long* s = shape)
            return new Tensor(NativeMethods.Randint(low, high, s, shape.Length, generator?.Live ?? IntPtr.Zero, (int)dtype, (int)d.Type, d.Index), "randint");
    }

    public static Tensor Randperm(long n, Generator? generator = null) =>
        new(NativeMethods.Randperm(n, generator?.Live ?? IntPtr.Zero), "randperm");

    public static Tensor Multinomial(Tensor probabilities, long samples, bool replacement = false, Generator? generator = null) =>
        new(NativeMethods.Multinomial(probabilities.Handle, samples, replacement ? 1 : 0, generator?.Live ?? IntPtr.Zero), "multinomial");

    public static Tensor ZerosLike(Tensor t) => Zeros(t.Shape, t.DType, t.Device);
    public static Tensor OnesLike(Tensor t) => Ones(t.Shape, t.DType, t.Device);
    public static Tensor EmptyLike(Tensor t) => Empty(t.Shape, t.DType, t.Device);
    public static Tensor FullLike(Tensor t, double value) => Full(t.Shape, value, t.DType, t.Device);
    public static Tensor RandLike(Tensor t, Generator? generator = null) => Rand(t.Shape, generator, t.DType, t.Device);
    public static Tensor RandnLike(Tensor t, Generator? generator = null) => Randn(t.Shape, generator, t.DType, t.Device);
    public static Tensor RandintLike(Tensor t, long low, long high, Generator? generator = null) => Randint(low, high, t.Shape, generator, t.DType, t.Device);

    /// <summary>Seeds libtorch's global CPU generator (used where no Generator is passed).</summary>
    public static void ManualSeed(ulong seed) => Tensor.Check(NativeMethods.ManualSeed(seed), "manual_seed");

    // ---- autograd modes ----

    /// <summary>Disables gradient recording until disposed (torch.no_grad()).</summary>
    public static GradModeScope NoGrad() => new(false);

    /// <summary>Enables gradient recording until disposed (torch.enable_grad()).</summary>
    public static GradModeScope EnableGrad() => new(true);

    /// <summary>libtorch's inference mode until disposed: no autograd bookkeeping at all.</summary>
    public static InferenceModeScope InferenceMode() => new();

    public static bool IsGradEnabled => NativeMethods.IsGradEnabled() == 1;

    // ---- runtime ----

    public static string LibTorchVersion => NativeMethods.LibTorchVersion();

    /// <summary>ABI version of the loaded native library (equal to the managed one, or loading fails).</summary>
    public static int NativeAbiVersion => NativeMethods.AbiVersion();

    public static int ManagedAbiVersion => LibTorch.AbiVersion;

    /// <summary>Intra-op threads; libtorch's default is the number of cores.</summary>
    public static int Threads
    {
        get => NativeMethods.GetNumThreads();
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "thread count must be at least 1");
            Tensor.Check(NativeMethods.SetNumThreads(value), "set_num_threads");
        }
    }

    /// <summary>"openblas …", "mkl", "reference" (the slow netlib BLAS) or "unknown".</summary>
    public static string Blas => NativeMethods.BlasInfo();

    public static bool IsReferenceBlas => Blas == "reference";

    /// <summary>The OMP_WAIT_POLICY libtorch's OpenMP runtime started with.</summary>
    public static string OmpWaitPolicy
    {
        get
        {
            _ = NativeMethods.AbiVersion(); // loading the library is what sets it
            return Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(unset: libgomp's default, spin then sleep)";
        }
    }

    public static bool CudaIsAvailable => NativeMethods.CudaIsAvailable() == 1;

    public static int CudaDeviceCount => Math.Max(0, NativeMethods.CudaDeviceCount());

    public static void CudaSynchronize(int index = 0) => Tensor.Check(NativeMethods.CudaSynchronize(index), "cuda_synchronize");

    /// <summary>Bytes in use and total on CUDA device <paramref name="index"/>.</summary>
    public static unsafe (long Used, long Total) CudaMemory(int index = 0)
    {
        long used, total;
        Tensor.Check(NativeMethods.CudaMemory(index, &used, &total), "cuda_memory");
        return (used, total);
    }

    /// <summary>Whether scaled-dot-product attention runs libtorch's fused kernel (libtorch ≥ 2.1).</summary>
    public static bool HasFusedAttention => NativeMethods.HasFusedAttention() == 1;
}

/// <summary>Restores the previous grad mode when disposed.</summary>
public readonly struct GradModeScope : IDisposable
{
    private readonly bool previous;

    internal GradModeScope(bool enabled) => previous = NativeMethods.SetGradEnabled(enabled ? 1 : 0) == 1;

    public void Dispose() => NativeMethods.SetGradEnabled(previous ? 1 : 0);
}

/// <summary>Leaves libtorch's inference mode when disposed; must be disposed on the thread that made it.</summary>
public sealed class InferenceModeScope : IDisposable
{
    private IntPtr guard;

    internal InferenceModeScope()
    {
        guard = NativeMethods.InferenceModeEnter();
        if (guard == IntPtr.Zero) throw TorchException.FromNative("inference_mode");
    }

    public void Dispose()
    {
        if (guard == IntPtr.Zero) return;
        NativeMethods.InferenceModeExit(guard);
        guard = IntPtr.Zero;
    }
}

using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>Tensor creation: torch.zeros, torch.randn, torch.arange, … (<c>Tensors.Randn([2, 3], generator)</c>).</summary>
public static class Tensors
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
}

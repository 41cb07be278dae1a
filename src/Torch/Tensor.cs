using System.Runtime.InteropServices;
using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>
/// A libtorch tensor. Owns one native handle: free it with <see cref="Dispose"/> or let the
/// enclosing <see cref="DisposeScope"/> free it. Operations return new tensors.
/// </summary>
public sealed partial class Tensor : IDisposable
{
    private IntPtr handle;

    internal DisposeScope? Scope;

    /// <summary>Wraps a native handle returned by an ld_* call; a null handle is a native failure.</summary>
    internal Tensor(IntPtr handle, string operation = "op")
    {
        if (handle == IntPtr.Zero) throw TorchException.FromNative(operation);
        this.handle = handle;
        Scope = DisposeScope.Current;
        Scope?.Register(this);
    }

    /// <summary>The native tensor, for an operation that reads or writes its values: a weight that inference released
    /// (a frozen convolution keeping only its prepacked copy) is given back first.</summary>
    internal IntPtr Handle
    {
        get
        {
            if (restore is { } r)
            {
                restore = null;
                r(this);
            }
            return MetaHandle;
        }
    }

    /// <summary>The native tensor as it is, for metadata only (shape, dtype, device, flags), which a released weight keeps right.</summary>
    internal IntPtr MetaHandle => handle != IntPtr.Zero ? handle : throw new ObjectDisposedException(nameof(Tensor), "the tensor was disposed");

    public bool IsDisposed => handle == IntPtr.Zero;

    /// <summary>Number of native tensor handles alive in this process.</summary>
    public static long LiveCount => NativeMethods.LiveTensors();

    /// <summary>Removes this tensor from its dispose scope: the caller now owns it.</summary>
    public Tensor DetachFromDisposeScope()
    {
        Scope?.Detach(this);
        Scope = null;
        return this;
    }

    public void Dispose()
    {
        if (handle == IntPtr.Zero) return;
        Scope?.Detach(this);
        Scope = null;
        Free();
    }

    internal void DisposeFromScope()
    {
        Scope = null;
        if (handle != IntPtr.Zero) Free();
    }

    private void Free()
    {
        NativeMethods.Free(handle);
        handle = IntPtr.Zero;
        GC.SuppressFinalize(this);
    }

    ~Tensor()
    {
        if (handle != IntPtr.Zero) NativeMethods.Free(handle);
    }

    internal static void Check(int status, string operation)
    {
        if (status < 0) throw TorchException.FromNative(operation);
    }

    // ---- metadata ----

    public int Dim => NativeMethods.Dim(MetaHandle);

    public unsafe long[] Shape
    {
        get
        {
            Span<long> buffer = stackalloc long[16];
            var n = ReadShape(buffer);
            if (n <= buffer.Length) return buffer[..n].ToArray();
            var big = new long[n];
            ReadShape(big);
            return big;
        }
    }

    /// <summary>Writes up to buffer.Length sizes into <paramref name="buffer"/>; returns the number of dimensions.</summary>
    private unsafe int ReadShape(Span<long> buffer)
    {
        int n;
        fixed (long* p = buffer) n = NativeMethods.Shape(MetaHandle, p, buffer.Length);
        Check(n, "shape");
        return n;
    }

    public unsafe long[] Strides
    {
        get
        {
            var result = new long[Dim];
            fixed (long* p = result) Check(NativeMethods.Strides(Handle, p, result.Length), "strides");
            return result;
        }
    }

    /// <summary>Size of one dimension; negative dims count from the end. Reads the shape into the stack (no array).</summary>
    public long Size(int dim)
    {
        Span<long> buffer = stackalloc long[16];
        var n = ReadShape(buffer);
        var index = dim < 0 ? n + dim : dim;
        if (index < 0 || index >= n)
            throw new ArgumentOutOfRangeException(nameof(dim), dim, $"dimension out of range for a {n}-d tensor");
        return index < buffer.Length ? buffer[index] : Shape[index];
    }

    public long NumEl => NativeMethods.NumEl(MetaHandle);

    public DType DType => (DType)NativeMethods.DType(MetaHandle);

    public unsafe Device Device
    {
        get
        {
            int type, index;
            Check(NativeMethods.Device(MetaHandle, &type, &index), "device");
            return new Device((DeviceType)type, index);
        }
    }

    public bool IsContiguous => NativeMethods.IsContiguous(Handle) == 1;

    public bool IsLeaf => NativeMethods.IsLeaf(MetaHandle) == 1;

    public bool RequiresGrad
    {
        get => NativeMethods.RequiresGrad(MetaHandle) == 1;
        set => Check(NativeMethods.SetRequiresGrad(Handle, value ? 1 : 0), "requires_grad_");
    }

    /// <summary>Sets requires-grad and returns this tensor (PyTorch's requires_grad_()).</summary>
    public Tensor RequiresGrad_(bool flag = true)
    {
        RequiresGrad = flag;
        return this;
    }

    public override string ToString() =>
        IsDisposed ? "Tensor(disposed)" : $"Tensor([{string.Join(", ", Shape)}], {DType}, {Device})";

    // ---- data transfer ----

    /// <summary>A CPU tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static unsafe Tensor From<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged
    {
        if (shape.Length == 0 && data.Length != 1) shape = [data.Length];
        long count = 1;
        foreach (var s in shape) count *= s;
        if (count != data.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {count} elements but {data.Length} were given");
        fixed (T* d = data)
        fixed (long* s = shape)
            return new Tensor(NativeMethods.FromData(d, s, shape.Length, (int)DTypeExtensions.Of<T>()), "from_data");
    }

    public static Tensor From<T>(T[] data, params long[] shape) where T : unmanaged => From((ReadOnlySpan<T>)data, shape);

    /// <summary>A CPU tensor of <paramref name="dtype"/> from raw little-endian bytes (e.g. bf16 weights).</summary>
    public static unsafe Tensor FromBytes(ReadOnlySpan<byte> bytes, DType dtype, params long[] shape)
    {
        long count = 1;
        foreach (var s in shape) count *= s;
        if (count * dtype.ElementSize() != bytes.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] of {dtype} needs {count * dtype.ElementSize()} bytes but {bytes.Length} were given");
        fixed (byte* d = bytes)
        fixed (long* s = shape)
            return new Tensor(NativeMethods.FromData(d, s, shape.Length, (int)dtype), "from_data");
    }

    /// <summary>Copies the elements (row-major, on the CPU) into <paramref name="destination"/>.</summary>
    public unsafe void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        if (DTypeExtensions.Of<T>() != DType)
            throw new ArgumentException($"tensor is {DType}, not {typeof(T).Name}; convert it with To(DType) first");
        fixed (T* d = destination)
            Check(NativeMethods.CopyToBuffer(Handle, d, (long)destination.Length * sizeof(T)), "copy_to_buffer");
    }

    public T[] ToArray<T>() where T : unmanaged
    {
        var result = new T[NumEl];
        CopyTo<T>(result);
        return result;
    }

    /// <summary>
    /// The address of the first element of a contiguous tensor, on its device, for another runtime to read or write in
    /// place (ONNX Runtime's OrtValues over our memory): valid only while this tensor lives; a non-contiguous tensor throws.
    /// </summary>
    public unsafe IntPtr DataPointer
    {
        get
        {
            void* data;
            Check(NativeMethods.DataPtr(Handle, &data), "data_ptr");
            return (IntPtr)data;
        }
    }

    /// <summary>The raw bytes of the elements in row-major order.</summary>
    public unsafe byte[] ToBytes()
    {
        var result = new byte[NumEl * DType.ElementSize()];
        fixed (byte* d = result) Check(NativeMethods.CopyToBuffer(Handle, d, result.Length), "copy_to_buffer");
        return result;
    }

    /// <summary>The single element of a one-element tensor as double.</summary>
    public unsafe double Item()
    {
        double v;
        Check(NativeMethods.Item(Handle, &v), "item");
        return v;
    }

    public float ItemFloat() => (float)Item();

    public unsafe long ItemInt64()
    {
        long v;
        Check(NativeMethods.ItemInt64(Handle, &v), "item");
        return v;
    }

    // ---- conversion and copies ----

    public Tensor To(Device device, DType? dtype = null, bool copy = false, bool nonBlocking = false) =>
        new(NativeMethods.To(Handle, (int)(dtype ?? DType), (int)device.Type, device.Index, nonBlocking ? 1 : 0, copy ? 1 : 0), "to");

    public Tensor To(DType dtype, bool copy = false) => To(Device, dtype, copy);

    public Tensor Float() => To(DType.Float32);

    public Tensor Contiguous() => new(NativeMethods.Contiguous(Handle), "contiguous");

    public Tensor Clone() => new(NativeMethods.Clone(Handle), "clone");

    public Tensor Detach() => new(NativeMethods.Detach(Handle), "detach");

    /// <summary>A second handle onto the same storage (cheap); dispose it independently.</summary>
    public Tensor Alias() => new(NativeMethods.Alias(Handle), "alias");

    public Tensor CopyFrom(Tensor source)
    {
        Check(NativeMethods.Copy_(Handle, source.Handle), "copy_");
        return this;
    }

    public Tensor Fill_(double value)
    {
        Check(NativeMethods.Fill_(Handle, value), "fill_");
        return this;
    }

    public Tensor Zero_()
    {
        Check(NativeMethods.Zero_(Handle), "zero_");
        return this;
    }

    public Tensor Uniform_(double from, double to, Generator? generator = null)
    {
        Check(NativeMethods.Uniform_(Handle, from, to, generator?.Live ?? IntPtr.Zero), "uniform_");
        return this;
    }

    public Tensor Normal_(double mean = 0, double std = 1, Generator? generator = null)
    {
        Check(NativeMethods.Normal_(Handle, mean, std, generator?.Live ?? IntPtr.Zero), "normal_");
        return this;
    }

    /// <summary>True when shapes and all elements are equal (torch.equal).</summary>
    public bool Equal(Tensor other)
    {
        var r = NativeMethods.Equal(Handle, other.Handle);
        Check(r, "equal");
        return r == 1;
    }

    // ---- autograd ----

    public void Backward(Tensor? gradient = null, bool retainGraph = false) =>
        Check(NativeMethods.Backward(Handle, gradient?.Handle ?? IntPtr.Zero, retainGraph ? 1 : 0), "backward");

    /// <summary>The accumulated gradient (a new handle onto it), or null when there is none.</summary>
    public unsafe Tensor? Grad
    {
        get
        {
            IntPtr g;
            Check(NativeMethods.Grad(Handle, &g), "grad");
            return g == IntPtr.Zero ? null : new Tensor(g);
        }
        set => Check(NativeMethods.SetGrad(Handle, value?.Handle ?? IntPtr.Zero), "set_grad");
    }

    /// <summary>Drops the gradient (PyTorch's zero_grad(set_to_none=True)).</summary>
    public void ZeroGrad() => Check(NativeMethods.ZeroGrad(Handle), "zero_grad");
}

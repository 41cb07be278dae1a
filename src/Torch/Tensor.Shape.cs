using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

// Shape, view and indexing operations (native/src/shape.cpp).
public sealed partial class Tensor
{
    public unsafe Tensor Reshape(params long[] shape)
    {
        fixed (long* s = shape) return new(NativeMethods.Reshape(Handle, s, shape.Length), "reshape");
    }

    public unsafe Tensor View(params long[] shape)
    {
        fixed (long* s = shape) return new(NativeMethods.View(Handle, s, shape.Length), "view");
    }

    public unsafe Tensor Permute(params long[] dims)
    {
        fixed (long* d = dims) return new(NativeMethods.Permute(Handle, d, dims.Length), "permute");
    }

    public Tensor Transpose(long dim0, long dim1) => new(NativeMethods.Transpose(Handle, dim0, dim1), "transpose");
    public Tensor T() => Transpose(0, 1);
    public Tensor Flatten(long startDim = 0, long endDim = -1) => new(NativeMethods.Flatten(Handle, startDim, endDim), "flatten");
    public Tensor Squeeze() => new(NativeMethods.Squeeze(Handle, 0, 0), "squeeze");
    public Tensor Squeeze(long dim) => new(NativeMethods.Squeeze(Handle, dim, 1), "squeeze");
    public Tensor Unsqueeze(long dim) => new(NativeMethods.Unsqueeze(Handle, dim), "unsqueeze");

    public unsafe Tensor Expand(params long[] shape)
    {
        fixed (long* s = shape) return new(NativeMethods.Expand(Handle, s, shape.Length), "expand");
    }

    public Tensor ExpandAs(Tensor other) => Expand(other.Shape);

    public unsafe Tensor Repeat(params long[] repeats)
    {
        fixed (long* r = repeats) return new(NativeMethods.Repeat(Handle, r, repeats.Length), "repeat");
    }

    public static unsafe Tensor Cat(IReadOnlyList<Tensor> tensors, long dim = 0)
    {
        var handles = Handles(tensors);
        fixed (IntPtr* h = handles) return new(NativeMethods.Cat(h, handles.Length, dim), "cat");
    }

    public static unsafe Tensor Stack(IReadOnlyList<Tensor> tensors, long dim = 0)
    {
        var handles = Handles(tensors);
        fixed (IntPtr* h = handles) return new(NativeMethods.Stack(h, handles.Length, dim), "stack");
    }

    public unsafe Tensor[] Chunk(long chunks, long dim = 0)
    {
        var output = new IntPtr[Math.Max(1, chunks)];
        int n;
        fixed (IntPtr* o = output) n = NativeMethods.Chunk(Handle, chunks, dim, o, output.Length);
        Check(n, "chunk");
        return Wrap(output, n);
    }

    /// <summary>Splits into pieces of <paramref name="size"/> along <paramref name="dim"/> (the last may be smaller).</summary>
    public unsafe Tensor[] Split(long size, long dim = 0)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), "split size must be positive");
        var cap = (int)((Size((int)dim) + size - 1) / size) + 1;
        var output = new IntPtr[cap];
        int n;
        fixed (IntPtr* o = output) n = NativeMethods.Split(Handle, &size, 1, dim, o, cap);
        Check(n, "split");
        return Wrap(output, n);
    }

    public unsafe Tensor[] Split(long[] sizes, long dim = 0)
    {
        var output = new IntPtr[sizes.Length];
        int n;
        fixed (long* s = sizes)
        fixed (IntPtr* o = output)
            n = NativeMethods.Split(Handle, s, sizes.Length, dim, o, output.Length);
        Check(n, "split");
        return Wrap(output, n);
    }

    public Tensor Narrow(long dim, long start, long length) => new(NativeMethods.Narrow(Handle, dim, start, length), "narrow");

    /// <summary>Python's x[start:end:step] along <paramref name="dim"/>; end may be long.MaxValue.</summary>
    public Tensor Slice(long dim, long start, long end, long step = 1) => new(NativeMethods.Slice(Handle, dim, start, end, step), "slice");

    public Tensor Select(long dim, long index) => new(NativeMethods.Select(Handle, dim, index), "select");

    /// <summary>x[i] along the first dimension.</summary>
    [System.Runtime.CompilerServices.IndexerName("At")]
    public Tensor this[long index] => Select(0, index);

    public Tensor IndexSelect(long dim, Tensor index) => new(NativeMethods.IndexSelect(Handle, dim, index.Handle), "index_select");
    public Tensor Gather(long dim, Tensor index) => new(NativeMethods.Gather(Handle, dim, index.Handle), "gather");

    /// <summary>A copy with rows <paramref name="index"/> (along dim 0) replaced by <paramref name="values"/>.</summary>
    public Tensor IndexPut(Tensor index, Tensor values) => new(NativeMethods.IndexPut(Handle, index.Handle, values.Handle), "index_put");

    public Tensor Triu(long diagonal = 0) => new(NativeMethods.Triu(Handle, diagonal), "triu");
    public Tensor Tril(long diagonal = 0) => new(NativeMethods.Tril(Handle, diagonal), "tril");

    public unsafe Tensor Flip(params long[] dims)
    {
        fixed (long* d = dims) return new(NativeMethods.Flip(Handle, d, dims.Length), "flip");
    }

    public Tensor Roll(long shift, long dim) => new(NativeMethods.Roll(Handle, shift, dim), "roll");
    public Tensor Nonzero() => new(NativeMethods.Nonzero(Handle), "nonzero");

    /// <summary>Where <paramref name="condition"/> is true take <paramref name="a"/>, else <paramref name="b"/>.</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b) => new(NativeMethods.Where(condition.Handle, a.Handle, b.Handle), "where");

    internal static IntPtr[] Handles(IReadOnlyList<Tensor> tensors)
    {
        var handles = new IntPtr[tensors.Count];
        for (int i = 0; i < handles.Length; i++) handles[i] = tensors[i].Handle;
        return handles;
    }

    private static Tensor[] Wrap(IntPtr[] handles, int n)
    {
        var result = new Tensor[n];
        for (int i = 0; i < n; i++) result[i] = new Tensor(handles[i]);
        return result;
    }
}

using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

// Support for LatentDiffusion.Torch.NN: a module keeps the same Tensor objects for its whole life
// (layers hold them in fields and optimisers in lists), so converting a module swaps the native
// tensor behind each object, as PyTorch's Module._apply assigns param.data.
public sealed partial class Tensor
{
    /// <summary>
    /// Makes this object refer to <paramref name="source"/>'s native tensor and frees the one it
    /// referred to; <paramref name="source"/> is left disposed.
    /// </summary>
    internal void ReplaceWith(Tensor source)
    {
        if (ReferenceEquals(source, this)) return;
        var incoming = source.Handle;
        source.Scope?.Detach(source);
        source.Scope = null;
        source.handle = IntPtr.Zero;
        GC.SuppressFinalize(source);
        var previous = Handle;
        handle = incoming;
        NativeMethods.Free(previous);
    }

    // Gives back a released weight before its values are used (see Handle); set by the layer that released it.
    private Action<Tensor>? restore;

    /// <summary>Calls <paramref name="action"/> (once) before the next use of this tensor's values; null: none.</summary>
    internal void RestoreBeforeUse(Action<Tensor>? action) => restore = action;

    /// <summary>The bytes this tensor's memory holds: a dense tensor's whole storage (shared with views or not), a oneDNN tensor's elements.</summary>
    internal long StorageBytes
    {
        get
        {
            var bytes = NativeMethods.TensorBytes(MetaHandle);
            if (bytes < 0) Check(-1, "tensor_bytes");
            return bytes;
        }
    }

    /// <summary>Whether a gradient has been accumulated (without keeping a handle to it).</summary>
    internal bool HasGrad
    {
        get
        {
            using var g = Grad;
            return g is not null;
        }
    }
}

using LatentDiffusion.Torch;

namespace LatentDiffusion.Blocks;

/// <summary>
/// Writing a forward pass as a chain, <c>norm1.Forward(x).Then(act).Then(conv1.Forward)</c>, frees
/// each intermediate activation as soon as the next step has consumed it. Autograd keeps whatever
/// it saved for the backward pass on its own, so only the handle is dropped; memory stays at a
/// couple of activations instead of every one until the enclosing scope ends (a 1024² decode).
/// </summary>
public static class TensorChain
{
    /// <summary>Applies <paramref name="next"/> and disposes <paramref name="x"/> (never pass the caller's input here).</summary>
    public static Tensor Then(this Tensor x, Func<Tensor, Tensor> next)
    {
        var y = next(x);
        if (!ReferenceEquals(x, y)) x.Dispose();
        return y;
    }

    /// <summary>
    /// <paramref name="owned"/> + <paramref name="other"/> (a residual add), written into <paramref name="owned"/> where
    /// no autograd records and the sum has its shape and dtype; otherwise a new tensor. Bit for bit the same sum: it
    /// saves the result's allocation and fresh pages (issue 19). Pass only a temporary the block made itself, never the
    /// caller's input.
    /// </summary>
    public static Tensor AddInto(this Tensor owned, Tensor other)
    {
        if (Autograd.IsGradEnabled || owned.DType != other.DType || owned.Device != other.Device || !BroadcastsInto(other.Shape, owned.Shape))
            return owned + other;
        return owned.Add_(other);
    }

    private static bool BroadcastsInto(long[] from, long[] to)
    {
        if (from.Length > to.Length) return false;
        for (int i = 1; i <= from.Length; i++)
            if (from[^i] != 1 && from[^i] != to[^i]) return false;
        return true;
    }
}

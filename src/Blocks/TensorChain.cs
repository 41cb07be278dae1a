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
}

using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.Optim;

public static class GradientClipping
{
    /// <summary>
    /// torch.nn.utils.clip_grad_norm_: scales every gradient in place by
    /// min(1, max_norm / (total_norm + 1e-6)), where total_norm is the <paramref name="normType"/>-norm
    /// of all gradients together (double.PositiveInfinity for the max norm). Returns total_norm, taken
    /// before clipping; parameters without a gradient are ignored (0 when none has one).
    /// </summary>
    public static unsafe double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm, double normType = 2)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(maxNorm >= 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "the maximum norm must not be negative");
        var handles = parameters.Select(p => p.Handle).ToArray();
        double total;
        fixed (IntPtr* h = handles)
            Tensor.Check(NativeMethods.ClipGradNorm(h, handles.Length, maxNorm, normType, &total), "clip_grad_norm");
        return total;
    }
}

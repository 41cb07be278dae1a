using LatentDiffusion.Torch;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training;

/// <summary>The reconstruction losses recipes choose between (training.loss).</summary>
public static class Losses
{
    /// <summary>Mean squared error (L2, the DDPM paper's simplified objective) or mean absolute error (L1).</summary>
    public static Tensor Compute(LossKind kind, Tensor prediction, Tensor target) => kind switch
    {
        LossKind.L2 => Functional.MseLoss(prediction, target),
        LossKind.L1 => Functional.L1Loss(prediction, target),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown loss"),
    };
}

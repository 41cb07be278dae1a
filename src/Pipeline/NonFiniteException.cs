using System.Globalization;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline;

/// <summary>
/// A denoising loop's latents (or pixels) became NaN or infinite: the model's weights or the scheduler's config are
/// broken (or a setting pushed the numbers past float range). Raised at the step where it happened instead of
/// finishing with an all-black image.
/// </summary>
public sealed class NonFiniteException(string message, int step, int totalSteps, double timestep) : ArithmeticException(message)
{
    public int Step { get; } = step;
    public int TotalSteps { get; } = totalSteps;
    public double Timestep { get; } = timestep;

    /// <summary>
    /// Throws when <paramref name="latents"/> holds a NaN or an infinity after step <paramref name="step"/> (1-based) of
    /// <paramref name="totalSteps"/>. One reduction and one scalar read per step: cheap next to a U-Net pass.
    /// </summary>
    public static void ThrowIfNotFinite(Tensor latents, int step, int totalSteps, double timestep, string what = "latents")
    {
        using var scope = DisposeScope.Enter();
        // Non-finite count, not all(isfinite), because only Sum/ItemInt64 are bound; the same single pass.
        if (latents.IsFinite().LogicalNot().Sum().ItemInt64() == 0) return;
        var t = timestep.ToString("0.###", CultureInfo.InvariantCulture);
        throw new NonFiniteException(
            $"step {step} of {totalSteps} (timestep {t}): the {what} became NaN or infinite; the model's weights or the scheduler config are broken",
            step, totalSteps, timestep);
    }
}

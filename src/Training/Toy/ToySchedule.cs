using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Toy;

/// <summary>
/// The toy's noise schedule: T = 100 betas following a sigmoid over linspace(−6, 6, T), scaled into
/// [β_min, β_max] = [1e-5, 5e-3], and the DDPM quantities derived from them. Small betas keep the
/// reverse steps gentle; the data (scaled to ±0.2) is tiny next to the unit noise it starts from.
/// </summary>
public sealed class ToySchedule : IDisposable
{
    public int Steps { get; }
    public double[] Betas { get; }
    public double[] AlphasCumprod { get; }

    /// <summary>√ᾱ_t and √(1 − ᾱ_t) as [T] float32 tensors, for indexing by a batch of timesteps.</summary>
    public Tensor AlphasBarSqrt { get; }
    public Tensor OneMinusAlphasBarSqrt { get; }

    public ToySchedule(int steps = 100, double betaMin = 1e-5, double betaMax = 5e-3)
    {
        if (steps < 2) throw new ArgumentOutOfRangeException(nameof(steps), steps, "the toy needs at least 2 diffusion steps");
        if (!(betaMin > 0 && betaMax > betaMin && betaMax < 1)) throw new ArgumentOutOfRangeException(nameof(betaMax), "need 0 < beta_min < beta_max < 1");
        Steps = steps;
        // Computed in float32 like the write-up's torch code, so the numbers are the same.
        using (var scope = DisposeScope.Enter())
        {
            var betas = Tensors.Linspace(-6, 6, steps).Sigmoid() * (betaMax - betaMin) + betaMin;
            Betas = Array.ConvertAll(betas.ToArray<float>(), v => (double)v);
            var cumprod = (1.0 - betas).CumProd(0);
            AlphasCumprod = Array.ConvertAll(cumprod.ToArray<float>(), v => (double)v);
            AlphasBarSqrt = cumprod.Sqrt().DetachFromDisposeScope();
            OneMinusAlphasBarSqrt = (1.0 - cumprod).Sqrt().DetachFromDisposeScope();
        }
    }

    /// <summary>q(x_t | x_0) = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for one timestep <paramref name="t"/>.</summary>
    public Tensor Noise(Tensor x0, int t, Generator random)
    {
        using var scope = DisposeScope.Enter();
        var noise = Tensors.RandnLike(x0, random);
        return scope.Keep(x0 * Math.Sqrt(AlphasCumprod[t]) + noise * Math.Sqrt(1 - AlphasCumprod[t]));
    }

    public void Dispose()
    {
        AlphasBarSqrt.Dispose();
        OneMinusAlphasBarSqrt.Dispose();
    }
}

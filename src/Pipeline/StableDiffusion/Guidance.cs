using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>Classifier-free guidance (Ho &amp; Salimans 2022) and its rescaling (Lin et al. 2023).</summary>
public static class Guidance
{
    /// <summary>ε = ε_u + s (ε_c − ε_u), from a U-Net output whose batch is [unconditional…, conditional…].</summary>
    public static Tensor Apply(Tensor noisePrediction, double scale, double rescale)
    {
        using var scope = DisposeScope.Enter();
        var halves = noisePrediction.Chunk(2);
        var (uncond, cond) = (halves[0], halves[1]);
        var guided = uncond + scale * (cond - uncond);
        if (rescale > 0) guided = Rescale(guided, cond, rescale);
        return scope.Keep(guided);
    }

    /// <summary>
    /// Matches the guided prediction's per-sample standard deviation to the conditional one's, then
    /// mixes: φ·rescaled + (1 − φ)·guided (Lin et al. 2023, Eq. 15–16; diffusers' rescale_noise_cfg).
    /// </summary>
    public static Tensor Rescale(Tensor guided, Tensor conditional, double phi)
    {
        using var scope = DisposeScope.Enter();
        var dims = Enumerable.Range(1, guided.Dim - 1).Select(d => (long)d).ToArray();
        var stdText = conditional.Std(dims, keepDim: true);
        var stdCfg = guided.Std(dims, keepDim: true);
        var rescaled = guided * (stdText / stdCfg);
        return scope.Keep(phi * rescaled + (1 - phi) * guided);
    }
}

using LatentDiffusion.Torch;

namespace LatentDiffusion.Autoencoder;

/// <summary>
/// The VAE posterior q(z|x) = N(μ, σ²) with diagonal covariance, built from the encoder's moments
/// [B, 2C, H, W] split into μ and log σ² along the channels (diffusers' DiagonalGaussianDistribution).
/// log σ² is clamped to [−30, 20] as diffusers does. The latents are unscaled: a pipeline multiplies
/// a sample by <see cref="AutoencoderKLConfig.ScalingFactor"/>.
/// Owns its tensors (and the moments it was given): dispose it, or let the enclosing scope free them.
/// </summary>
public sealed class DiagonalGaussianDistribution : IDisposable
{
    public const double LogVarMin = -30.0, LogVarMax = 20.0;

    /// <summary>The encoder moments [B, 2C, H, W] this distribution was made from.</summary>
    public Tensor Parameters { get; }

    /// <summary>μ [B, C, H, W] (a view of <see cref="Parameters"/>).</summary>
    public Tensor Mean { get; }

    /// <summary>log σ², clamped to [−30, 20].</summary>
    public Tensor LogVar { get; }

    /// <summary>σ = exp(½ log σ²) (zero when deterministic).</summary>
    public Tensor Std { get; }

    /// <summary>σ² = exp(log σ²) (zero when deterministic).</summary>
    public Tensor Var { get; }

    public bool Deterministic { get; }

    public DiagonalGaussianDistribution(Tensor parameters, bool deterministic = false)
    {
        Parameters = parameters;
        Deterministic = deterministic;
        var halves = parameters.Chunk(2, dim: 1);
        Mean = halves[0];
        using (var logVar = halves[1]) LogVar = logVar.Clamp(LogVarMin, LogVarMax);
        if (deterministic)
        {
            Std = Tensors.ZerosLike(Mean);
            Var = Tensors.ZerosLike(Mean);
            return;
        }
        using (var half = LogVar * 0.5) Std = half.Exp();
        Var = LogVar.Exp();
    }

    /// <summary>
    /// z = μ + σ·ε with ε ~ N(0, I) drawn like diffusers' randn_tensor: on the generator's device
    /// (the CPU for a CPU generator, so a seed gives PyTorch's numbers) and then moved to μ's device.
    /// </summary>
    public Tensor Sample(Generator? generator = null)
    {
        var device = generator?.Device ?? Mean.Device;
        using var noise = Tensors.Randn(Mean.Shape, generator, Mean.DType, device);
        if (noise.Device == Mean.Device) return Sample(noise);
        using var moved = noise.To(Mean.Device);
        return Sample(moved);
    }

    /// <summary>z = μ + σ·ε with the given standard-normal <paramref name="noise"/> (e.g. the golden's injected noise).</summary>
    public Tensor Sample(Tensor noise)
    {
        using var scaled = Std * noise;
        return Mean + scaled;
    }

    /// <summary>The mode μ (a new handle onto it).</summary>
    public Tensor Mode() => Mean.Alias();

    /// <summary>
    /// KL(q ‖ N(0, I)) per sample = ½ Σ (μ² + σ² − 1 − log σ²) over C, H, W; [B]. Zeros when deterministic.
    /// </summary>
    public Tensor Kl()
    {
        if (Deterministic) return Tensors.Zeros([1], Mean.DType, Mean.Device);
        using var scope = DisposeScope.Enter();
        var terms = Mean.Pow(2) + Var - 1.0 - LogVar;
        return scope.Keep(terms.Sum([1, 2, 3]) * 0.5);
    }

    /// <summary>KL(q ‖ other) per sample = ½ Σ ((μ − μₒ)²/σₒ² + σ²/σₒ² − 1 − log σ² + log σₒ²); [B].</summary>
    public Tensor Kl(DiagonalGaussianDistribution other)
    {
        if (Deterministic) return Tensors.Zeros([1], Mean.DType, Mean.Device);
        using var scope = DisposeScope.Enter();
        var terms = (Mean - other.Mean).Pow(2) / other.Var + Var / other.Var - 1.0 - LogVar + other.LogVar;
        return scope.Keep(terms.Sum([1, 2, 3]) * 0.5);
    }

    /// <summary>Negative log-likelihood of <paramref name="sample"/>: ½ Σ (log 2π + log σ² + (x − μ)²/σ²) over <paramref name="dims"/>.</summary>
    public Tensor Nll(Tensor sample, long[]? dims = null)
    {
        if (Deterministic) return Tensors.Zeros([1], Mean.DType, Mean.Device);
        using var scope = DisposeScope.Enter();
        var terms = LogVar + Math.Log(2.0 * Math.PI) + (sample - Mean).Pow(2) / Var;
        return scope.Keep(terms.Sum(dims ?? [1, 2, 3]) * 0.5);
    }

    public void Dispose()
    {
        Mean.Dispose();
        LogVar.Dispose();
        Std.Dispose();
        Var.Dispose();
        Parameters.Dispose();
    }
}

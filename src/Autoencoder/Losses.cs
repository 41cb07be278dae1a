using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Autoencoder;

/// <summary>Pixel reconstruction distance.</summary>
public enum ReconstructionLoss
{
    /// <summary>|x − x̂| (LDM's autoencoders).</summary>
    L1,

    /// <summary>(x − x̂)².</summary>
    L2,
}

/// <summary>The discriminator's objective.</summary>
public enum DiscriminatorLossKind
{
    /// <summary>Hinge loss (LDM, VQGAN).</summary>
    Hinge,

    /// <summary>Non-saturating binary cross-entropy on the logits.</summary>
    Vanilla,
}

/// <summary>The autoencoder loss terms of LDM (taming-transformers' LPIPSWithDiscriminator, without LPIPS).</summary>
public static class VaeLosses
{
    /// <summary>Elementwise |x − x̂| or (x − x̂)².</summary>
    public static Tensor Reconstruction(Tensor inputs, Tensor reconstructions, ReconstructionLoss kind = ReconstructionLoss.L1)
    {
        using var difference = inputs - reconstructions;
        return kind == ReconstructionLoss.L1 ? difference.Abs() : difference.Square();
    }

    /// <summary>Hinge loss of the discriminator: ½ (mean ReLU(1 − D(x)) + mean ReLU(1 + D(x̂))).</summary>
    public static Tensor HingeDiscriminatorLoss(Tensor logitsReal, Tensor logitsFake)
    {
        using var scope = DisposeScope.Enter();
        var real = (1.0 - logitsReal).Relu().Mean();
        var fake = (1.0 + logitsFake).Relu().Mean();
        return scope.Keep((real + fake) * 0.5);
    }

    /// <summary>Non-saturating ("vanilla") loss: ½ (mean softplus(−D(x)) + mean softplus(D(x̂))).</summary>
    public static Tensor VanillaDiscriminatorLoss(Tensor logitsReal, Tensor logitsFake)
    {
        using var scope = DisposeScope.Enter();
        using var ones = Tensors.OnesLike(logitsReal);
        using var zeros = Tensors.ZerosLike(logitsFake);
        // softplus(−l) = BCEWithLogits(l, 1), softplus(l) = BCEWithLogits(l, 0).
        var real = Functional.BinaryCrossEntropyWithLogits(logitsReal, ones);
        var fake = Functional.BinaryCrossEntropyWithLogits(logitsFake, zeros);
        return scope.Keep((real + fake) * 0.5);
    }

    /// <summary>The discriminator's loss of kind <paramref name="kind"/> (taming's disc_loss "hinge" or "vanilla").</summary>
    public static Tensor DiscriminatorLoss(DiscriminatorLossKind kind, Tensor logitsReal, Tensor logitsFake) => kind switch
    {
        DiscriminatorLossKind.Hinge => HingeDiscriminatorLoss(logitsReal, logitsFake),
        DiscriminatorLossKind.Vanilla => VanillaDiscriminatorLoss(logitsReal, logitsFake),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown discriminator loss"),
    };

    /// <summary>The generator's adversarial loss −mean D(x̂).</summary>
    public static Tensor GeneratorLoss(Tensor logitsFake)
    {
        using var mean = logitsFake.Mean();
        return mean.Neg();
    }

    /// <summary>taming's adopt_weight: <paramref name="weight"/> from <paramref name="threshold"/> on, <paramref name="value"/> before.</summary>
    public static double AdoptWeight(double weight, long globalStep, long threshold, double value = 0.0) =>
        globalStep < threshold ? value : weight;

    /// <summary>
    /// The adaptive weight of the adversarial term (VQGAN, Esser et al. 2021, eq. 7):
    /// λ = ‖∇_L rec‖ / (‖∇_L gan‖ + 10⁻⁴), clamped to [0, 10⁴] and detached, times
    /// <paramref name="discriminatorWeight"/>, where L is the decoder's last layer. It balances the two
    /// gradients where they meet the image. The gradients come from torch.autograd.grad with the
    /// graph retained, so nothing is accumulated into any parameter's gradient and the caller's
    /// backward pass through the same graph still works.
    /// </summary>
    public static double AdaptiveWeight(Tensor reconstructionLoss, Tensor generatorLoss, Tensor lastLayer, double discriminatorWeight = 1.0)
    {
        using var scope = DisposeScope.Enter();
        var recGrad = Autograd.Grad(reconstructionLoss, lastLayer, retainGraph: true);
        var ganGrad = Autograd.Grad(generatorLoss, lastLayer, retainGraph: true);
        var weight = recGrad.Norm().Item() / (ganGrad.Norm().Item() + 1e-4);
        return Math.Clamp(weight, 0.0, 1e4) * discriminatorWeight;
    }
}

/// <summary>Options of <see cref="AutoencoderLoss"/>; defaults are LDM's autoencoder configs (kl-f8: kl_weight 1e-6, disc_weight 0.5).</summary>
public sealed record AutoencoderLossOptions
{
    public ReconstructionLoss Reconstruction { get; init; } = ReconstructionLoss.L1;

    /// <summary>Weight of KL(q(z|x) ‖ N(0, I)); small, so the latent stays detailed but bounded.</summary>
    public double KlWeight { get; init; } = 1e-6;

    /// <summary>Initial value of the learned log-variance of the reconstruction likelihood (LDM's logvar_init).</summary>
    public double LogVarInit { get; init; }

    /// <summary>Train with a PatchGAN discriminator.</summary>
    public bool UseDiscriminator { get; init; }

    /// <summary>Step from which the adversarial terms count (LDM's disc_start).</summary>
    public long DiscriminatorStart { get; init; } = 50001;

    public double DiscriminatorFactor { get; init; } = 1.0;
    public double DiscriminatorWeight { get; init; } = 0.5;
    public int DiscriminatorLayers { get; init; } = 3;
    public int DiscriminatorChannels { get; init; } = 64;
    public DiscriminatorNorm DiscriminatorNorm { get; init; } = DiscriminatorNorm.BatchNorm;

    /// <summary>Hinge (LDM) or vanilla.</summary>
    public DiscriminatorLossKind DiscriminatorLoss { get; init; } = DiscriminatorLossKind.Hinge;

    /// <summary>Balance the adversarial gradient against the reconstruction's at the decoder's last layer; otherwise use DiscriminatorWeight as is.</summary>
    public bool AdaptiveWeight { get; init; } = true;
}

/// <summary>The scalar parts of one loss evaluation, for logging.</summary>
public sealed record AutoencoderLossLog(double Total, double Reconstruction, double Nll, double Kl, double GeneratorLoss,
    double DiscriminatorWeight, double DiscriminatorFactor, double DiscriminatorLoss);

/// <summary>
/// The training loss of an <see cref="AutoencoderKL"/> as LDM trains it (LPIPSWithDiscriminator with
/// the perceptual term left out). Generator step:
/// nll = Σ (rec(x, x̂) / e^s + s) / B with a learned log-variance s, kl = Σ KL / B,
/// loss = nll + kl_weight · kl + λ · f · (−mean D(x̂)), where λ is the adaptive weight and f the
/// discriminator factor (0 before <see cref="AutoencoderLossOptions.DiscriminatorStart"/>).
/// Discriminator step: f · hinge(D(x), D(x̂)) on detached images. Optimise the autoencoder's
/// parameters together with <see cref="LogVar"/>, and the <see cref="Discriminator"/>'s separately.
/// </summary>
public sealed class AutoencoderLoss : Module
{
    public AutoencoderLossOptions Options { get; }

    /// <summary>The learned log-variance s of the reconstruction likelihood (a scalar parameter "logvar").</summary>
    public Tensor LogVar { get; }

    public NLayerDiscriminator? Discriminator { get; }

    public AutoencoderLoss(AutoencoderLossOptions? options = null, int imageChannels = 3, Generator? generator = null)
    {
        Options = options ?? new AutoencoderLossOptions();
        if (!Enum.IsDefined(Options.DiscriminatorLoss))
            throw new ArgumentException($"discriminator loss {(int)Options.DiscriminatorLoss} is not supported (hinge or vanilla)", nameof(options));
        LogVar = RegisterParameter("logvar", Tensors.Full([], Options.LogVarInit));
        if (Options.UseDiscriminator)
        {
            Discriminator = RegisterModule("discriminator", new NLayerDiscriminator(imageChannels, Options.DiscriminatorChannels,
                Options.DiscriminatorLayers, Options.DiscriminatorNorm, generator));
        }
    }

    /// <summary>
    /// The autoencoder's loss for images <paramref name="inputs"/> and their <paramref name="reconstructions"/>
    /// decoded from a sample of <paramref name="posterior"/>. <paramref name="autoencoder"/> gives the last
    /// layer for the adaptive weight (needed only with a discriminator past its start step).
    /// </summary>
    public (Tensor Loss, AutoencoderLossLog Log) GeneratorLoss(Tensor inputs, Tensor reconstructions, DiagonalGaussianDistribution posterior,
        long globalStep, AutoencoderKL? autoencoder = null)
    {
        using var scope = DisposeScope.Enter();
        var batch = inputs.Size(0);
        var rec = VaeLosses.Reconstruction(inputs, reconstructions, Options.Reconstruction);
        var nll = (rec / LogVar.Exp() + LogVar).Sum() / batch;
        var kl = posterior.Kl().Sum() / batch;
        var loss = nll + kl * Options.KlWeight;

        double generatorLoss = 0, weight = 0;
        var factor = Discriminator is null ? 0 : VaeLosses.AdoptWeight(Options.DiscriminatorFactor, globalStep, Options.DiscriminatorStart);
        if (factor > 0)
        {
            var gLoss = VaeLosses.GeneratorLoss(Discriminator!.Forward(reconstructions));
            weight = Options.DiscriminatorWeight;
            if (Options.AdaptiveWeight)
            {
                var model = autoencoder ?? throw new ArgumentNullException(nameof(autoencoder), "the adaptive weight needs the autoencoder's last layer");
                weight = VaeLosses.AdaptiveWeight(nll, gLoss, model.Decoder.ConvOut.Weight, Options.DiscriminatorWeight);
            }
            loss = loss + gLoss * (weight * factor);
            generatorLoss = gLoss.Item();
        }
        var log = new AutoencoderLossLog(loss.Item(), rec.Mean().Item(), nll.Item(), kl.Item(), generatorLoss, weight, factor, 0);
        return (scope.Keep(loss), log);
    }

    /// <summary>The discriminator's loss on real <paramref name="inputs"/> and (detached) <paramref name="reconstructions"/>.</summary>
    public (Tensor Loss, AutoencoderLossLog Log) DiscriminatorLoss(Tensor inputs, Tensor reconstructions, long globalStep)
    {
        var discriminator = Discriminator ?? throw new InvalidOperationException("this loss has no discriminator (UseDiscriminator is false)");
        using var scope = DisposeScope.Enter();
        var logitsReal = discriminator.Forward(inputs.Detach());
        var logitsFake = discriminator.Forward(reconstructions.Detach());
        var factor = VaeLosses.AdoptWeight(Options.DiscriminatorFactor, globalStep, Options.DiscriminatorStart);
        var dLoss = VaeLosses.DiscriminatorLoss(Options.DiscriminatorLoss, logitsReal, logitsFake);
        var loss = dLoss * factor;
        var value = loss.Item();
        return (scope.Keep(loss), new AutoencoderLossLog(value, 0, 0, 0, 0, 0, factor, value));
    }
}

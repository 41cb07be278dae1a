using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Autoencoder;

/// <summary>Normalisation of the PatchGAN discriminator's inner layers.</summary>
public enum DiscriminatorNorm
{
    /// <summary>BatchNorm2d with running statistics, as taming-transformers and LDM train it.</summary>
    BatchNorm,

    /// <summary>GroupNorm (32 groups or fewer): independent of the batch size, so it works with batch 1.</summary>
    GroupNorm,
}

/// <summary>
/// The PatchGAN discriminator of pix2pix, taming-transformers and LDM (<c>NLayerDiscriminator</c>):
/// conv4×4/2 → LeakyReLU(0.2), then n−1 × [conv4×4/2 → norm → LeakyReLU], conv4×4/1 → norm → LeakyReLU,
/// and a conv4×4/1 to one logit per overlapping patch. Channels double per layer up to 8× ndf.
/// Keys are taming's (<c>main.0.weight</c>, <c>main.2.weight</c>, <c>main.3.running_mean</c>, …);
/// weights start N(0, 0.02), norm scales N(1, 0.02) (taming's weights_init).
/// </summary>
public sealed class NLayerDiscriminator : Module<Tensor, Tensor>
{
    public Sequential Main { get; }

    public NLayerDiscriminator(int inputChannels = 3, int ndf = 64, int layers = 3, DiscriminatorNorm norm = DiscriminatorNorm.BatchNorm,
        Generator? generator = null)
    {
        if (layers < 1) throw new ArgumentOutOfRangeException(nameof(layers), layers, "the discriminator needs at least one layer");
        // A conv followed by BatchNorm needs no bias (the norm's shift replaces it); taming keeps the bias otherwise.
        var bias = norm != DiscriminatorNorm.BatchNorm;
        var modules = new List<Module<Tensor, Tensor>>
        {
            Conv(inputChannels, ndf, stride: 2, bias: true, generator),
            new LeakyReLU(0.2),
        };
        var multiple = 1;
        for (int n = 1; n < layers; n++)
        {
            var previous = multiple;
            multiple = Math.Min(1 << n, 8);
            modules.Add(Conv(ndf * previous, ndf * multiple, stride: 2, bias, generator));
            modules.Add(Norm(ndf * multiple, norm, generator));
            modules.Add(new LeakyReLU(0.2));
        }
        var last = multiple;
        multiple = Math.Min(1 << layers, 8);
        modules.Add(Conv(ndf * last, ndf * multiple, stride: 1, bias, generator));
        modules.Add(Norm(ndf * multiple, norm, generator));
        modules.Add(new LeakyReLU(0.2));
        modules.Add(Conv(ndf * multiple, 1, stride: 1, bias: true, generator));
        Main = RegisterModule("main", new Sequential([.. modules]));
    }

    /// <summary>Images [B, C, H, W] → patch logits [B, 1, h, w] (real > 0 > fake after training).</summary>
    public override Tensor Forward(Tensor input) => Main.Forward(input);

    private static Conv2d Conv(int inChannels, int outChannels, int stride, bool bias, Generator? generator)
    {
        var conv = new Conv2d(inChannels, outChannels, 4, stride: stride, padding: 1, bias: bias, generator: generator);
        Init.Normal_(conv.Weight, 0.0, 0.02, generator);
        return conv;
    }

    private static Module<Tensor, Tensor> Norm(int channels, DiscriminatorNorm norm, Generator? generator)
    {
        if (norm == DiscriminatorNorm.BatchNorm)
        {
            var batchNorm = new BatchNorm2d(channels);
            Init.Normal_(batchNorm.Weight, 1.0, 0.02, generator);
            return batchNorm;
        }
        var groupNorm = new GroupNorm(Math.Min(32, channels), channels);
        Init.Normal_(groupNorm.Weight!, 1.0, 0.02, generator);
        return groupNorm;
    }
}

/// <summary>torch.nn.LeakyReLU: x for x ≥ 0, slope·x below.</summary>
public sealed class LeakyReLU(double negativeSlope = 0.01) : Module<Tensor, Tensor>
{
    public double NegativeSlope { get; } = negativeSlope;

    public override Tensor Forward(Tensor input) => Functional.LeakyRelu(input, NegativeSlope);
}

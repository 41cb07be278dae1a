using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet.ConvNeXt;

/// <summary>
/// Sinusoidal timestep embedding of the write-up (no parameters): [sin(t·f), cos(t·f)] with
/// f_i = θ^(−i/(d/2 − 1)), i = 0 … d/2 − 1. Note the divisor d/2 − 1 (diffusers uses d/2) and sin first.
/// </summary>
public sealed class SinusoidalPositionEmbedding : Module<Tensor, Tensor>
{
    public int Dim { get; }
    public double Theta { get; }

    public SinusoidalPositionEmbedding(int dim, double theta = 10000)
    {
        if (dim < 4 || dim % 2 != 0) throw new ArgumentOutOfRangeException(nameof(dim), dim, "the embedding size must be even and at least 4");
        Dim = dim;
        Theta = theta;
    }

    /// <summary>[B] timesteps (any numeric dtype) → [B, dim] float32.</summary>
    public override Tensor Forward(Tensor timesteps)
    {
        using var scope = DisposeScope.Enter();
        int half = Dim / 2;
        var scale = Math.Log(Theta) / (half - 1);
        var frequencies = (Tensors.Arange(half, DType.Float32, timesteps.Device) * -scale).Exp();
        var t = timesteps.Dim == 0 ? timesteps.Reshape(1) : timesteps;
        var arguments = t.To(DType.Float32).Unsqueeze(1) * frequencies.Unsqueeze(0);
        return scope.Keep(Tensor.Cat([arguments.Sin(), arguments.Cos()], -1));
    }
}

/// <summary>Downsampling by 2: 2×2 pixel-unshuffle (space to depth, channel order c·4 + 2·dy + dx) then a 1×1 conv; child "net.1".</summary>
public sealed class PixelUnshuffleDownsample : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    public PixelUnshuffleDownsample(int dim, int dimOut, Generator? generator = null)
    {
        // "net" mirrors nn.Sequential(Rearrange, Conv2d): the rearrange has no weights, the conv is net.1.
        var net = RegisterModule("net", new ModuleList());
        net.Add(new Identity());
        conv = new Conv2d(dim * 4, dimOut, 1, generator: generator);
        net.Add(conv);
    }

    public override Tensor Forward(Tensor input)
    {
        using var unshuffled = Functional.PixelUnshuffle(input, 2);
        return conv.Forward(unshuffled);
    }
}

/// <summary>Upsampling by 2: nearest-neighbour ×2 then a 3×3 conv; child "net.1".</summary>
public sealed class NearestUpsample : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    public NearestUpsample(int dim, int dimOut, Generator? generator = null)
    {
        var net = RegisterModule("net", new ModuleList());
        net.Add(new Identity());
        conv = new Conv2d(dim, dimOut, 3, padding: 1, generator: generator);
        net.Add(conv);
    }

    public override Tensor Forward(Tensor input)
    {
        using var upsampled = Functional.Interpolate(input, 2.0, InterpolationMode.Nearest);
        return conv.Forward(upsampled);
    }
}

/// <summary>
/// Attention gate on a skip connection (ACC-UNet / Attention U-Net): the gate g (the decoder's
/// features) and the skip x are projected by 1×1 convs to g's width, summed, ReLU, projected to one
/// channel, squashed by a sigmoid, and the skip is multiplied by that spatial mask.
/// </summary>
public sealed class AttentionGate : Module
{
    private readonly Conv2d gateConv, residualConv, inConv;

    public AttentionGate(int gateChannels, int residualChannels, Generator? generator = null)
    {
        gateConv = RegisterModule("gate_conv", new Conv2d(gateChannels, gateChannels, 1, generator: generator));
        residualConv = RegisterModule("residual_conv", new Conv2d(residualChannels, gateChannels, 1, generator: generator));
        inConv = RegisterModule("in_conv", new Conv2d(gateChannels, 1, 1, generator: generator));
    }

    /// <summary>sigmoid(W_in · ReLU(W_g·g + W_x·x)) ⊙ x.</summary>
    public Tensor Forward(Tensor skip, Tensor gate)
    {
        using var scope = DisposeScope.Enter();
        var mixed = (gateConv.Forward(gate) + residualConv.Forward(skip)).Relu();
        var mask = inConv.Forward(mixed).Sigmoid();
        return scope.Keep(mask * skip);
    }
}

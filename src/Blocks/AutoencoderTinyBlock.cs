using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// TAESD's Block (diffusers' AutoencoderTinyBlock): out = ReLU(conv(x) + skip(x)), where conv is
/// conv3×3 → act → conv3×3 → act → conv3×3 (keys conv.0, conv.2, conv.4) and skip is the identity or a
/// bias-free 1×1 conv. With a <see cref="Pool"/> branch (TAEF2) x ← x + pool(x) comes first.
/// </summary>
public sealed class AutoencoderTinyBlock : Module<Tensor, Tensor>
{
    public Sequential Conv { get; }
    public Module<Tensor, Tensor> Skip { get; }
    public ReLU Fuse { get; }

    /// <summary>TAEF2's pooling branch: conv1×1 (4× channels, no bias) → GroupNorm(4) → ReLU → conv1×1 back; null otherwise.</summary>
    public Sequential? Pool { get; }

    public AutoencoderTinyBlock(int inChannels, int outChannels, string actFn, bool midblockGn = false, Generator? generator = null)
    {
        Conv = RegisterModule("conv", new Sequential(
            new Conv2d(inChannels, outChannels, 3, padding: 1, generator: generator),
            Activations.Create(actFn),
            new Conv2d(outChannels, outChannels, 3, padding: 1, generator: generator),
            Activations.Create(actFn),
            new Conv2d(outChannels, outChannels, 3, padding: 1, generator: generator)));
        Skip = RegisterModule<Module<Tensor, Tensor>>("skip", inChannels != outChannels
            ? new Conv2d(inChannels, outChannels, 1, bias: false, generator: generator)
            : new Identity());
        Fuse = RegisterModule("fuse", new ReLU());
        if (midblockGn)
        {
            var wide = inChannels * 4;
            Pool = RegisterModule("pool", new Sequential(
                new Conv2d(inChannels, wide, 1, bias: false, generator: generator),
                new GroupNorm(4, wide),
                new ReLU(),
                new Conv2d(wide, inChannels, 1, bias: false, generator: generator)));
        }
    }

    public override Tensor Forward(Tensor input)
    {
        using var scope = DisposeScope.Enter();
        var x = Pool is null ? input : input + Pool.Forward(input);
        var sum = Conv.Forward(x) + Skip.Forward(x);
        return scope.Keep(sum.Then(Fuse.Forward));
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// diffusers' ControlNetConditioningEmbedding: the conditioning image (full resolution) down to the latent size in
/// stride-2 steps: conv_in, SiLU, then per stage a conv and a stride-2 conv each followed by SiLU, conv_out (no activation).
/// </summary>
public sealed class ControlNetConditioningEmbedding : Module<Tensor, Tensor>
{
    private readonly Conv2d convIn;
    private readonly ModuleList<Conv2d> blocks;
    private readonly Conv2d convOut;

    public ControlNetConditioningEmbedding(long embeddingChannels, long conditioningChannels, IReadOnlyList<int> outChannels, Generator? generator = null)
    {
        convIn = RegisterModule("conv_in", new Conv2d(conditioningChannels, outChannels[0], 3, padding: 1, generator: generator));
        blocks = RegisterModule("blocks", new ModuleList<Conv2d>());
        for (int i = 0; i < outChannels.Count - 1; i++)
        {
            blocks.Add(new Conv2d(outChannels[i], outChannels[i], 3, padding: 1, generator: generator));
            blocks.Add(new Conv2d(outChannels[i], outChannels[i + 1], 3, padding: 1, stride: 2, generator: generator));
        }
        convOut = RegisterModule("conv_out", new Conv2d(outChannels[^1], embeddingChannels, 3, padding: 1, generator: generator));
        if (!Init.IsSkipping)
        {
            Init.Zeros_(convOut.Weight);
            Init.Zeros_(convOut.Bias!);
        }
    }

    public override Tensor Forward(Tensor conditioning)
    {
        using var scope = DisposeScope.Enter();
        var h = Functional.Silu(convIn.Forward(conditioning));
        foreach (var block in blocks) h = Functional.Silu(block.Forward(h));
        return scope.Keep(convOut.Forward(h));
    }
}

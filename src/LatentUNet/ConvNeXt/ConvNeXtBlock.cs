using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet.ConvNeXt;

/// <summary>
/// The write-up's ConvNeXt block:
/// h = DWConv7×7(x) + Linear(GELU(t_emb)) (broadcast over pixels);
/// h = Conv3×3(GroupNorm₁(GELU(Conv3×3(GroupNorm₁(h)))))  (in → out·mult → out);
/// return h + Conv1×1(x) (identity when the width does not change).
/// GroupNorm with one group normalises over all channels and pixels, like a LayerNorm per image.
/// Parameter names are the PyTorch module's: mlp.1, in_conv, block.{0,1,3,4}, residual_conv.
/// </summary>
public sealed class ConvNeXtBlock : Module
{
    private readonly Linear? timeProjection;
    private readonly Conv2d inConv;
    private readonly Sequential block;
    private readonly Conv2d? residualConv;

    public int InChannels { get; }
    public int OutChannels { get; }

    public ConvNeXtBlock(int inChannels, int outChannels, int mult = 2, int? timeEmbeddingDim = null, bool norm = true,
        Generator? generator = null)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        if (timeEmbeddingDim is { } timeDim)
        {
            timeProjection = new Linear(timeDim, inChannels, generator: generator);
            RegisterModule("mlp", new Sequential(new GELU(), timeProjection));
        }
        inConv = RegisterModule("in_conv", new Conv2d(inChannels, inChannels, 7, padding: 3, groups: inChannels, generator: generator));
        block = RegisterModule("block", new Sequential(
            norm ? new GroupNorm(1, inChannels) : new Identity(),
            new Conv2d(inChannels, outChannels * mult, 3, padding: 1, generator: generator),
            new GELU(),
            new GroupNorm(1, outChannels * mult),
            new Conv2d(outChannels * mult, outChannels, 3, padding: 1, generator: generator)));
        if (inChannels != outChannels)
            residualConv = RegisterModule("residual_conv", new Conv2d(inChannels, outChannels, 1, generator: generator));
    }

    /// <summary>x [B, in, H, W], time embedding [B, time_dim] (or null) → [B, out, H, W].</summary>
    public Tensor Forward(Tensor x, Tensor? timeEmbedding)
    {
        using var scope = DisposeScope.Enter();
        var h = inConv.Forward(x);
        if (timeProjection is not null && timeEmbedding is not null)
        {
            var shift = timeProjection.Forward(Functional.Gelu(timeEmbedding));
            h = h + shift.Unsqueeze(-1).Unsqueeze(-1);
        }
        h = block.Forward(h);
        var residual = residualConv is null ? x : residualConv.Forward(x);
        return scope.Keep(h + residual);
    }
}

using LatentDiffusion.Torch;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// What a ControlNet adds to a U-Net (diffusers' down_block_additional_residuals and mid_block_additional_residual):
/// one tensor per skip connection, in the order the down pass produces them (conv_in's output first), and one for the
/// mid block's output. The caller owns the tensors; disposing disposes them all.
/// </summary>
public sealed record UNetResiduals(IReadOnlyList<Tensor> Down, Tensor Mid) : IDisposable
{
    public void Dispose()
    {
        foreach (var t in Down) t.Dispose();
        Mid.Dispose();
    }

    /// <summary>A stream's rows of every residual (views that live until its pass returns; <see cref="BatchStreams"/>).</summary>
    internal UNetResiduals Slice(BatchSlice slice) => new(Down.Select(d => slice.Of(d)!).ToList(), slice.Of(Mid)!);

    /// <summary>The residuals of the whole batch from its streams' (concatenated along the batch, in order).</summary>
    internal static UNetResiduals Join(IReadOnlyList<UNetResiduals> parts) =>
        new(Enumerable.Range(0, parts[0].Down.Count).Select(i => Tensor.Cat(parts.Select(p => p.Down[i]).ToList(), 0)).ToList(),
            Tensor.Cat(parts.Select(p => p.Mid).ToList(), 0));

    /// <summary>The skips with the residuals added; a residual list that does not fit the U-Net's skips is refused in one line.</summary>
    internal List<Tensor> AddToSkips(List<Tensor> skips)
    {
        if (Down.Count != skips.Count)
            throw new ArgumentException($"the ControlNet gives {Down.Count} down-block residuals but the U-Net has {skips.Count} skip connections: their block layouts differ");
        var sum = new List<Tensor>(skips.Count);
        for (int i = 0; i < skips.Count; i++)
        {
            if (!Down[i].Shape.SequenceEqual(skips[i].Shape))
                throw new ArgumentException($"the ControlNet's down-block residual {i} is [{string.Join(", ", Down[i].Shape)}] but the U-Net's skip connection is [{string.Join(", ", skips[i].Shape)}]: their block layouts differ");
            sum.Add(skips[i] + Down[i]);
        }
        return sum;
    }
}

using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.LatentUNet;

/// <summary><see cref="ConfigCheck"/>s of per-block config values (<see cref="OneOrMany{T}"/>).</summary>
public static class OneOrManyChecks
{
    /// <summary>The values for <paramref name="count"/> blocks, each positive; an error names the list entry, or the field when it gave one value.</summary>
    public static int[] PositivePerBlock(this ConfigCheck check, OneOrMany<int> value, int count, string field)
    {
        var values = value.PerBlock(count, field);
        for (int i = 0; i < values.Length; i++) check.Positive(values[i], value.IsList ? $"{field}[{i}]" : field);
        return values;
    }
}

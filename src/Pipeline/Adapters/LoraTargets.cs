using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>
/// The layers of one pipeline component that a LoRA can change (Linear and Conv2d), by dotted path and by kohya name.
/// The kohya name of a layer is its own path with '.' → '_' (diffusers 0.30.3's converter and kohya's trainer both derive it
/// so), so matching against the model's module names resolves names like <c>…transformer_blocks_0_attn1_to_out_0</c> that
/// undoing every '_' could not. A kohya name two layers share is ambiguous and resolves to neither.
/// </summary>
internal sealed class LoraTargets
{
    private readonly Dictionary<string, Module> byPath = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string?> pathByKohyaName = new(StringComparer.Ordinal);

    public LoraTargets(Module component)
    {
        foreach (var (path, module) in component.NamedModules())
        {
            if (module is not (Linear or Conv2d)) continue;
            byPath[path] = module;
            var kohya = path.Replace('.', '_');
            pathByKohyaName[kohya] = pathByKohyaName.ContainsKey(kohya) ? null : path;
        }
    }

    // The repeated blocks whose layout tells architectures apart: SD 1.x/2.x have attentions in down_blocks.0, SDXL none and
    // ten transformer blocks deeper down; SD 2.x's text encoder has 23 layers, SD 1.x's 12.
    private static readonly (string Family, int Parts)[] Blocks =
        [("down_blocks_", 3), ("up_blocks_", 3), ("mid_block_", 2), ("text_model_encoder_layers_", 1)];

    /// <summary>
    /// The block (kohya-style, e.g. <c>down_blocks_0_attentions_0</c>) the entry changes when this component has no layer in it
    /// at all, which marks a LoRA for another architecture rather than one stray key; null otherwise.
    /// </summary>
    public string? MissingBlock(LoraModule m)
    {
        var kohya = m.IsDottedPath ? m.Key.Replace('.', '_') : m.Key;
        foreach (var (family, count) in Blocks)
        {
            if (!kohya.StartsWith(family, StringComparison.Ordinal)) continue;
            var parts = kohya[family.Length..].Split('_');
            if (parts.Length <= count) return null;
            var block = family + string.Join('_', parts.Take(count)) + "_";
            return pathByKohyaName.Keys.Any(k => k.StartsWith(block, StringComparison.Ordinal)) ? null : block[..^1];
        }
        return null;
    }

    /// <summary>The dotted path and weight the entry changes, or null when the model has no such layer.</summary>
    public (string Path, Tensor Weight)? Resolve(LoraModule m)
    {
        var path = m.IsDottedPath ? m.Key : pathByKohyaName.GetValueOrDefault(m.Key);
        if (path is null || !byPath.TryGetValue(path, out var module)) return null;
        return (path, module is Linear linear ? linear.Weight : ((Conv2d)module).Weight);
    }
}

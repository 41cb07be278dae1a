using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>
/// One low-rank update of a LoRA file: ΔW = (alpha / rank) · up · down for the module <see cref="Key"/> of the
/// pipeline component <see cref="Component"/> ("unet", "text_encoder"). Kohya keys are the module path with '.'
/// replaced by '_' (<see cref="IsDottedPath"/> false, resolved against the model's own module names); PEFT keys are
/// the dotted path itself. <see cref="Down"/> is [r, in] or [r, in, kh, kw] (LoCon), <see cref="Up"/> [out, r] or
/// [out, r, 1, 1]; both float32 on the CPU, owned by the <see cref="LoraFile"/>.
/// </summary>
public sealed record LoraModule(string Component, string Key, bool IsDottedPath, Tensor Down, Tensor Up, double? Alpha)
{
    public long Rank => Down.Shape[0];

    /// <summary>alpha / rank (kohya's per-module scale); no alpha means alpha = rank (diffusers/PEFT files fold it into up).</summary>
    public double AlphaScale => (Alpha ?? Rank) / Rank;

    /// <summary>The kohya prefix the file uses (lora_te_ or SDXL's lora_te1_ for the first text encoder); empty: the component's usual one.</summary>
    public string KohyaPrefix { get; init; } = "";

    /// <summary>The module as a file names it: the kohya name with its prefix, or the PEFT component.path.</summary>
    public string Name => IsDottedPath ? $"{Component}.{Key}" : $"{(KohyaPrefix.Length > 0 ? KohyaPrefix : LoraKeys.KohyaPrefixOf(Component))}{Key}";
}

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>The part of a LoRA module a tensor key holds.</summary>
internal enum LoraPart { Down, Up, Alpha }

/// <summary>
/// LoRA tensor names, as the two formats people share write them:
/// <list type="bullet">
/// <item>kohya-ss / AUTOMATIC1111: <c>lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight</c>, <c>.lora_up.weight</c>,
/// <c>.alpha</c>: a component prefix and the module path with every '.' turned into '_' (resolved against the model's own
/// module names by <see cref="LoraTargets"/>, since '_' also occurs inside names such as <c>transformer_blocks</c>);</item>
/// <item>diffusers / PEFT: <c>unet.down_blocks.0.attentions.0.proj_in.lora_A.weight</c>, <c>.lora_B.weight</c>, an optional
/// <c>.alpha</c> (diffusers' older <c>.lora.down.weight</c> / <c>.lora.up.weight</c> too).</item>
/// </list>
/// SDXL's two text encoders are <c>lora_te1_</c> / <c>lora_te2_</c> (kohya's sdxl_train_network) and <c>text_encoder.</c> /
/// <c>text_encoder_2.</c> (diffusers' save_lora_weights for StableDiffusionXLPipeline); its U-Net keys are SD's.
/// </summary>
internal static class LoraKeys
{
    // kohya prefix → pipeline component (diffusers 0.30.3 _convert_non_diffusers_lora_to_diffusers: lora_te_ is the first text encoder).
    private static readonly (string Prefix, string Component)[] KohyaPrefixes =
    [
        ("lora_unet_", "unet"),
        ("lora_te_", "text_encoder"),
        ("lora_te1_", "text_encoder"),
        ("lora_te2_", "text_encoder_2"),
    ];

    private static readonly string[] PeftComponents = ["unet", "text_encoder_2", "text_encoder"];

    private static readonly (string Suffix, LoraPart Part)[] KohyaSuffixes =
    [
        (".lora_down.weight", LoraPart.Down),
        (".lora_up.weight", LoraPart.Up),
        (".alpha", LoraPart.Alpha),
    ];

    private static readonly (string Suffix, LoraPart Part)[] PeftSuffixes =
    [
        (".lora_A.weight", LoraPart.Down),
        (".lora_B.weight", LoraPart.Up),
        (".lora.down.weight", LoraPart.Down),
        (".lora.up.weight", LoraPart.Up),
        (".alpha", LoraPart.Alpha),
    ];

    public static string KohyaPrefixOf(string component) =>
        KohyaPrefixes.First(p => p.Component == component).Prefix;

    /// <summary>The kohya prefix a tensor key starts with (lora_te_ and lora_te1_ both name the first text encoder).</summary>
    public static string KohyaPrefixIn(string name) =>
        KohyaPrefixes.First(p => name.StartsWith(p.Prefix, StringComparison.Ordinal)).Prefix;

    /// <summary>The module and part a tensor key names, or null for a key of neither format (LoHa, LoKr, DoRA scales, …).</summary>
    public static (string Component, string Key, bool IsDottedPath, LoraPart Part)? Parse(string name)
    {
        foreach (var (prefix, component) in KohyaPrefixes)
        {
            if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            foreach (var (suffix, part) in KohyaSuffixes)
            {
                if (!name.EndsWith(suffix, StringComparison.Ordinal)) continue;
                var key = name[prefix.Length..^suffix.Length];
                // kohya names carry no '.': anything else (lora_unet_x.hada_w1_a.weight, …) is another format
                if (key.Length > 0 && !key.Contains('.')) return (component, key, false, part);
            }
            return null;
        }
        foreach (var component in PeftComponents)
        {
            if (!name.StartsWith(component + ".", StringComparison.Ordinal)) continue;
            foreach (var (suffix, part) in PeftSuffixes)
            {
                if (!name.EndsWith(suffix, StringComparison.Ordinal)) continue;
                var key = name[(component.Length + 1)..^suffix.Length];
                if (key.Length > 0) return (component, key, true, part);
            }
            return null;
        }
        return null;
    }
}

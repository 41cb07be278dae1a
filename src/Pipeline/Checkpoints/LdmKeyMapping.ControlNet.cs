using System.Text.RegularExpressions;

namespace LatentDiffusion.Pipeline.Checkpoints;

// ControlNet checkpoints in the original layout (lllyasviel's cldm: control_model.*), renamed as diffusers'
// convert_ldm_unet_checkpoint(controlnet=True) does: the U-Net encoder keys as the U-Net's, plus the hint block, the
// zero convolutions and the mid block's zero convolution.
public sealed partial class LdmKeyMapping
{
    /// <summary>The prefix of every tensor of an original ControlNet file (some conversions drop it).</summary>
    public const string ControlNetPrefix = "control_model.";

    /// <summary>The layout numbers of a ControlNet file from its key names (without <see cref="ControlNetPrefix"/>).</summary>
    public static LdmKeyMapping InferControlNet(IEnumerable<string> keys) => Infer(keys.Select(k => UNetPrefix + k));

    /// <summary>
    /// The diffusers name (component "controlnet") of a ControlNet tensor (its key without <see cref="ControlNetPrefix"/>):
    /// input_hint_block.0 → controlnet_cond_embedding.conv_in, the convs between → blocks.0…, the last
    /// (<paramref name="lastHintIndex"/>) → conv_out; zero_convs.i.0 → controlnet_down_blocks.i; middle_block_out.0 →
    /// controlnet_mid_block; everything else as the U-Net's encoder.
    /// </summary>
    public MappedKey MapControlNet(string key, int lastHintIndex)
    {
        var m = HintBlock().Match(key);
        if (m.Success)
        {
            var n = int.Parse(m.Groups[1].Value);
            var module = n == 0 ? "conv_in" : n == lastHintIndex ? "conv_out" : $"blocks.{n / 2 - 1}";
            // the SiLU modules between the convs hold no tensors: every conv sits at an even index
            if (n % 2 != 0) throw new InvalidDataException($"unknown ControlNet tensor '{ControlNetPrefix}{key}'");
            return new MappedKey("controlnet", $"controlnet_cond_embedding.{module}.{m.Groups[2].Value}");
        }
        m = ZeroConv().Match(key);
        if (m.Success) return new MappedKey("controlnet", $"controlnet_down_blocks.{m.Groups[1].Value}.{m.Groups[2].Value}");
        if (key.StartsWith("middle_block_out.0.", StringComparison.Ordinal))
            return new MappedKey("controlnet", "controlnet_mid_block." + key["middle_block_out.0.".Length..]);
        if (key.StartsWith("output_blocks.", StringComparison.Ordinal) || key.StartsWith("out.", StringComparison.Ordinal))
            throw new InvalidDataException($"'{key}' is a U-Net decoder tensor: this is no ControlNet checkpoint");
        return MapUNet(key)! with { Component = "controlnet" };
    }

    /// <summary>The index of the hint block's last conv (its conv_out) among <paramref name="keys"/>, or null when there is no hint block.</summary>
    public static int? LastHintIndex(IEnumerable<string> keys)
    {
        int? last = null;
        foreach (var key in keys)
        {
            var m = HintBlock().Match(key);
            if (m.Success) last = Math.Max(last ?? 0, int.Parse(m.Groups[1].Value));
        }
        return last;
    }

    [GeneratedRegex(@"^input_hint_block\.(\d+)\.(weight|bias)$")] private static partial Regex HintBlock();
    [GeneratedRegex(@"^zero_convs\.(\d+)\.0\.(weight|bias)$")] private static partial Regex ZeroConv();
}

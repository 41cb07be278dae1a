using System.Globalization;
using System.Text.RegularExpressions;

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>A LoRA a request asks for: a file path, or a name looked up in <see cref="LoraAdapters.Directory"/>; A1111's multipliers.</summary>
/// <param name="TextEncoderScale">The text encoders' multiplier when it differs from <paramref name="Scale"/> (A1111's <c>&lt;lora:name:te:unet&gt;</c>).</param>
public sealed record LoraRequest(string PathOrName, double Scale = 1.0, double? TextEncoderScale = null);

/// <summary>
/// AUTOMATIC1111's extra-network prompt syntax for LoRAs: <c>&lt;lora:NAME&gt;</c>, <c>&lt;lora:NAME:0.8&gt;</c> (both multipliers),
/// <c>&lt;lora:NAME:TE:UNET&gt;</c>. The tags are cut out of the text the encoder sees and kept in the PNG parameters' prompt.
/// </summary>
public static partial class LoraPromptTags
{
    // A1111 modules/extra_networks.py re_extra_net = <(\w+):([^>]+)>; "lyco" is the LyCORIS extension's name for the same thing.
    [GeneratedRegex(@"<(lora|lyco):([^>]+)>", RegexOptions.CultureInvariant)]
    private static partial Regex Tag();

    /// <summary>The prompt without its LoRA tags, and the tags in order; a malformed multiplier is one line naming the tag.</summary>
    public static (string Prompt, IReadOnlyList<LoraRequest> Loras) Extract(string prompt)
    {
        var loras = new List<LoraRequest>();
        var stripped = Tag().Replace(prompt, match =>
        {
            var items = match.Groups[2].Value.Split(':');
            var name = items[0].Trim();
            if (name.Length == 0 || items.Length > 3) throw new FormatException($"prompt tag {match.Value}: expected <lora:NAME>, <lora:NAME:MULTIPLIER> or <lora:NAME:TE:UNET>");
            var te = items.Length > 1 ? Multiplier(match.Value, items[1]) : 1.0;
            var unet = items.Length > 2 ? Multiplier(match.Value, items[2]) : te;
            loras.Add(new LoraRequest(name, unet, te == unet ? null : te));
            return "";
        });
        return (stripped, loras);
    }

    /// <summary>The tag A1111 reads back for a LoRA given outside the prompt (e.g. --lora FILE:SCALE).</summary>
    public static string Format(string name, double scale, double? textEncoderScale = null) =>
        textEncoderScale is { } te && te != scale
            ? $"<lora:{name}:{te.ToString(CultureInfo.InvariantCulture)}:{scale.ToString(CultureInfo.InvariantCulture)}>"
            : $"<lora:{name}:{scale.ToString(CultureInfo.InvariantCulture)}>";

    private static double Multiplier(string tag, string text) =>
        double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
            ? v
            : throw new FormatException($"prompt tag {tag}: '{text}' is not a multiplier (a number such as 0.8)");
}

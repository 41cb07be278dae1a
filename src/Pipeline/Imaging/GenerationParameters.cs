using System.Globalization;
using System.Text;
using System.Text.Json;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// How an image was made, in the text AUTOMATIC1111 stores in a PNG's <c>parameters</c> chunk:
/// <code>
/// a photo of a cat
/// Negative prompt: blurry
/// Steps: 20, Sampler: Euler a, Schedule type: Uniform, CFG scale: 7, Seed: 42, Size: 512x512, Model: name
/// </code>
/// (A1111 ≥ 1.9 writes the sampler and its "Schedule type"; older versions folded the schedule into the
/// sampler name, "DPM++ 2M Karras", and wrote no schedule type. Schedulers.Samplers reads both.)
/// Fields this record does not name (e.g. "Model hash", "Version") are kept in <see cref="Extra"/>.
/// </summary>
public sealed partial record GenerationParameters
{
    public required string Prompt { get; init; }
    public string NegativePrompt { get; init; } = "";
    public required int Steps { get; init; }
    /// <summary>A1111's sampler name, e.g. "Euler a", "DDIM", "DPM++ 2M" (older files: "DPM++ 2M Karras").</summary>
    public required string Sampler { get; init; }
    /// <summary>A1111's "Schedule type" (≥ 1.9), e.g. "Karras"; null in older files.</summary>
    public string? ScheduleType { get; init; }
    public required double CfgScale { get; init; }
    public required long Seed { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    public string? Model { get; init; }
    /// <summary>Image-to-image strength ("Denoising strength").</summary>
    public double? Strength { get; init; }
    public int? ClipSkip { get; init; }
    public double? Eta { get; init; }
    /// <summary>Other "Key: value" fields, in order; written after the named ones.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Extra { get; init; } = [];

    /// <summary>The A1111 text; the same as <see cref="ToString"/>.</summary>
    public string Format()
    {
        var fields = new List<KeyValuePair<string, string>> { new("Steps", Invariant(Steps)), new("Sampler", Sampler) };
        if (ScheduleType is not null) fields.Add(new("Schedule type", ScheduleType));
        fields.Add(new("CFG scale", Invariant(CfgScale)));
        fields.Add(new("Seed", Invariant(Seed)));
        fields.Add(new("Size", $"{Invariant(Width)}x{Invariant(Height)}"));
        if (Model is not null) fields.Add(new("Model", Model));
        if (Strength is { } strength) fields.Add(new("Denoising strength", Invariant(strength)));
        if (ClipSkip is { } clipSkip) fields.Add(new("Clip skip", Invariant(clipSkip)));
        if (Eta is { } eta) fields.Add(new("Eta", Invariant(eta)));
        fields.AddRange(Extra);

        // A1111: ", ".join(k if k == v else f"{k}: {quote(v)}"), then the whole text stripped.
        var line = string.Join(", ", fields.Select(f => f.Key == f.Value ? f.Key : $"{f.Key}: {Quote(f.Value)}"));
        var negative = NegativePrompt.Length > 0 ? $"\nNegative prompt: {NegativePrompt}" : "";
        return $"{Prompt}{negative}\n{line}".Trim();
    }

    public override string ToString() => Format();

    /// <summary>The <c>parameters</c> text chunk for a PNG.</summary>
    public PngText ToPngText() => new(PngText.ParametersKeyword, Format());

    /// <summary>Reads the <c>parameters</c> chunk of a PNG file; null when it has none.</summary>
    /// <exception cref="ImageLoadException">when the file cannot be read or is not a PNG.</exception>
    /// <exception cref="FormatException">when the text lacks a required field.</exception>
    public static GenerationParameters? FromPng(string path) =>
        PngReader.ReadText(path).Find(PngText.ParametersKeyword) is { } text ? Parse(text) : null;

    // A1111's value quoting: json.dumps(ensure_ascii=False) when the value holds ',', ':' or a newline.
    internal static string Quote(string value)
    {
        if (value.IndexOfAny([',', ':', '\n']) < 0) return value;
        var sb = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case < ' ': sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"').ToString();
    }

    internal static string Unquote(string value)
    {
        if (value.Length < 2 || value[0] != '"' || value[^1] != '"') return value;
        try
        {
            using var json = JsonDocument.Parse(value);
            return json.RootElement.GetString() ?? value;
        }
        catch (JsonException)
        {
            return value;
        }
    }

    private static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);

    // A value that came from a float (0.7f) prints as the float's shortest form, "0.7", not 0.699999988079071.
    private static string Invariant(double value) =>
        (double)(float)value == value ? ((float)value).ToString(CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);

    public bool Equals(GenerationParameters? other) =>
        other is not null &&
        Prompt == other.Prompt && NegativePrompt == other.NegativePrompt && Steps == other.Steps && Sampler == other.Sampler && ScheduleType == other.ScheduleType &&
        CfgScale.Equals(other.CfgScale) && Seed == other.Seed && Width == other.Width && Height == other.Height &&
        Model == other.Model && Strength.Equals(other.Strength) && ClipSkip == other.ClipSkip && Eta.Equals(other.Eta) &&
        Extra.SequenceEqual(other.Extra);

    public override int GetHashCode() => HashCode.Combine(Prompt, NegativePrompt, Steps, Sampler, CfgScale, Seed, Width, Height);
}

using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;

namespace LatentDiffusion.Pipeline.Imaging;

// The reader of A1111's text, following its parse_generation_parameters line for line.
public sealed partial record GenerationParameters
{
    // A1111's re_param: "Key: value" or "Key: \"json string\"", separated by commas.
    [GeneratedRegex("""\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)""")]
    private static partial Regex ParamPattern();

    [GeneratedRegex("""^(\d+)x(\d+)$""")]
    private static partial Regex SizePattern();

    /// <summary>Parses A1111 text.</summary>
    /// <exception cref="FormatException">when Steps, Sampler, CFG scale, Seed or Size is missing or malformed.</exception>
    public static GenerationParameters Parse(string text)
    {
        var lines = text.Trim().Split('\n').ToList();
        var last = lines[^1];
        lines.RemoveAt(lines.Count - 1);
        // A last line with fewer than three fields is part of the prompt.
        if (ParamPattern().Matches(last).Count < 3)
        {
            lines.Add(last);
            last = "";
        }

        string prompt = "", negative = "";
        bool doneWithPrompt = false;
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.StartsWith("Negative prompt:", StringComparison.Ordinal))
            {
                doneWithPrompt = true;
                line = line["Negative prompt:".Length..].Trim();
            }
            if (doneWithPrompt) negative += (negative.Length == 0 ? "" : "\n") + line;
            else prompt += (prompt.Length == 0 ? "" : "\n") + line;
        }

        var fields = new List<KeyValuePair<string, string>>();
        foreach (Match m in ParamPattern().Matches(last))
        {
            var value = m.Groups[2].Value;
            fields.Add(new(m.Groups[1].Value, value.Length > 0 && value[0] == '"' && value[^1] == '"' ? Unquote(value) : value));
        }

        string Take(string key)
        {
            int i = fields.FindIndex(f => f.Key == key);
            if (i < 0) throw new FormatException($"generation parameters have no '{key}' field");
            var value = fields[i].Value;
            fields.RemoveAt(i);
            return value;
        }
        string? TakeOptional(string key) => fields.Any(f => f.Key == key) ? Take(key) : null;

        var size = Take("Size");
        var sizeMatch = SizePattern().Match(size);
        if (!sizeMatch.Success) throw new FormatException($"generation parameter 'Size' is '{size}', not WIDTHxHEIGHT");

        return new GenerationParameters
        {
            Prompt = prompt,
            NegativePrompt = negative,
            Steps = Number<int>("Steps", Take("Steps")),
            Sampler = Take("Sampler"),
            ScheduleType = TakeOptional("Schedule type"),
            CfgScale = Number<double>("CFG scale", Take("CFG scale")),
            Seed = Number<long>("Seed", Take("Seed")),
            Width = Number<int>("Size", sizeMatch.Groups[1].Value),
            Height = Number<int>("Size", sizeMatch.Groups[2].Value),
            Model = TakeOptional("Model"),
            Strength = TakeOptional("Denoising strength") is { } s ? Number<double>("Denoising strength", s) : null,
            ClipSkip = TakeOptional("Clip skip") is { } c ? Number<int>("Clip skip", c) : null,
            Eta = TakeOptional("Eta") is { } e ? Number<double>("Eta", e) : null,
            Extra = fields,
        };
    }

    /// <summary>Parses A1111 text; false when a required field is missing or malformed.</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out GenerationParameters? parameters)
    {
        try
        {
            parameters = Parse(text);
            return true;
        }
        catch (FormatException)
        {
            parameters = null;
            return false;
        }
    }

    private static T Number<T>(string key, string value) where T : INumber<T> =>
        T.TryParse(value.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var result)
            ? result
            : throw new FormatException($"generation parameter '{key}' is '{value}', not a number");
}

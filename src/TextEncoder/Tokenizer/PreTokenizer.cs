using System.Globalization;
using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// CLIP's pre-tokenisation, <c>re.findall</c> of
/// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
/// (case-insensitive), written as a scanner rather than a .NET Regex because .NET matches
/// character classes per UTF-16 unit: a letter outside the BMP (𝐀, 𠀀) is two surrogates, which
/// .NET would put in the punctuation class where Python's regex module sees one letter.
/// Whitespace between matches is skipped, as <c>findall</c> does.
/// </summary>
internal static class PreTokenizer
{
    public const string StartOfText = "<|startoftext|>";
    public const string EndOfText = "<|endoftext|>";

    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    private enum Kind { Space, Letter, Number, Other }

    /// <summary>The matches, in order.</summary>
    public static List<string> Split(string text)
    {
        var matches = new List<string>();
        var i = 0;
        while (i < text.Length)
        {
            var length = MatchAt(text, i);
            if (length == 0)
            {
                i += RuneLength(text, i); // whitespace: no alternative matches here
                continue;
            }
            matches.Add(text.Substring(i, length));
            i += length;
        }
        return matches;
    }

    // Length of the match starting at `start` (alternatives tried in the pattern's order), 0 if none.
    private static int MatchAt(string text, int start)
    {
        var rest = text.AsSpan(start);
        if (rest[0] == '<')
        {
            if (rest.StartsWith(StartOfText, StringComparison.OrdinalIgnoreCase)) return StartOfText.Length;
            if (rest.StartsWith(EndOfText, StringComparison.OrdinalIgnoreCase)) return EndOfText.Length;
        }
        else if (rest[0] == '\'')
        {
            foreach (var c in Contractions)
            {
                if (rest.StartsWith(c, StringComparison.OrdinalIgnoreCase)) return c.Length;
            }
        }

        switch (Classify(text, start))
        {
            case Kind.Letter:
                return RunLength(text, start, Kind.Letter);
            case Kind.Number:
                return RuneLength(text, start);
            case Kind.Other:
                return RunLength(text, start, Kind.Other);
            default:
                return 0;
        }
    }

    private static int RunLength(string text, int start, Kind kind)
    {
        var i = start;
        while (i < text.Length && Classify(text, i) == kind) i += RuneLength(text, i);
        return i - start;
    }

    private static Kind Classify(string text, int index)
    {
        if (Rune.DecodeFromUtf16(text.AsSpan(index), out var rune, out _) != System.Buffers.OperationStatus.Done)
            return Kind.Other; // a lone surrogate is neither space, letter nor number
        if (Rune.IsWhiteSpace(rune)) return Kind.Space;
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Kind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Kind.Number,
            _ => Kind.Other,
        };
    }

    private static int RuneLength(string text, int index) =>
        char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]) ? 2 : 1;
}

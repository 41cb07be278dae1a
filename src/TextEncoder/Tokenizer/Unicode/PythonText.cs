using System.Globalization;
using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// The few Python string semantics the CLIP tokenizers depend on, where .NET differs:
/// <c>str.lower()</c> uses full case mapping (U+0130 'İ' becomes "i̇", two code points) and the
/// Greek final-sigma rule (a word-final 'Σ' becomes 'ς'); invariant .NET casing does neither.
/// </summary>
internal static class PythonText
{
    private const int CapitalSigma = 0x03A3;

    /// <summary>Python's <c>str.lower()</c>.</summary>
    public static string Lower(string text)
    {
        var needsSpecial = false;
        foreach (var c in text)
        {
            if (c is '\u0130' or '\u03A3') { needsSpecial = true; break; }
        }
        if (!needsSpecial) return text.ToLowerInvariant();

        var runes = text.EnumerateRunes().ToArray();
        var builder = new StringBuilder(text.Length + 2);
        for (var i = 0; i < runes.Length; i++)
        {
            var rune = runes[i];
            if (rune.Value == 0x0130) builder.Append("i\u0307");
            else if (rune.Value == CapitalSigma) builder.Append(IsFinalSigma(runes, i) ? 'ς' : 'σ');
            else builder.Append(Rune.ToLowerInvariant(rune).ToString());
        }
        return builder.ToString();
    }

    // Unicode's Final_Sigma condition, as CPython implements it: a cased letter before (skipping
    // case-ignorable characters) and no cased letter after.
    private static bool IsFinalSigma(Rune[] runes, int index)
    {
        var j = index - 1;
        while (j >= 0 && IsCaseIgnorable(runes[j])) j--;
        if (j < 0 || !IsCased(runes[j])) return false;
        j = index + 1;
        while (j < runes.Length && IsCaseIgnorable(runes[j])) j++;
        return j == runes.Length || !IsCased(runes[j]);
    }

    private static bool IsCased(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
            or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || r.Value is '\'' or '.' or ':' or 0x00B7 or 0x0387 or 0x055F or 0x05F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
            or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A or 0x00AD;

    /// <summary>Python's <c>str.strip()</c> / <c>str.split()</c> whitespace (<c>str.isspace</c>).</summary>
    public static bool IsWhiteSpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';
}

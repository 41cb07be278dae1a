using System.Globalization;
using System.Net;
using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>The text clean-up that runs before pre-tokenisation, in the two reference flavours.</summary>
internal static class TextCleaner
{
    public static string Clean(string text, ClipTextCleaning cleaning) => cleaning switch
    {
        ClipTextCleaning.Transformers => Transformers(text),
        ClipTextCleaning.OpenAI => OpenAI(text),
        _ => throw new ArgumentOutOfRangeException(nameof(cleaning), cleaning, "unknown text clean-up"),
    };

    /// <summary>
    /// transformers' CLIPTokenizer without ftfy: <c>BasicTokenizer(strip_accents=False,
    /// do_split_on_punc=False)</c> — drop NUL, U+FFFD and control/format characters, turn every
    /// whitespace into a space, pad CJK ideographs with spaces, NFC, split on whitespace,
    /// lower-case each word, join with single spaces.
    /// </summary>
    public static string Transformers(string text)
    {
        var builder = new StringBuilder(text.Length + 8);
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (c < 0x80) // ASCII fast path: the only controls there are Cc
            {
                if (c is ' ' or '\t' or '\n' or '\r') builder.Append(' ');
                else if (c >= ' ' && c != '\x7F') builder.Append(c);
                i++;
                continue;
            }
            // An unpaired surrogate decodes as U+FFFD, which is dropped like Python drops Cs.
            Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var consumed);
            var cp = rune.Value;
            if (cp != 0xFFFD && !IsControl(rune))
            {
                if (Rune.GetUnicodeCategory(rune) == UnicodeCategory.SpaceSeparator) builder.Append(' ');
                else if (IsCjkIdeograph(cp)) builder.Append(' ').Append(text, i, consumed).Append(' ');
                else builder.Append(text, i, consumed);
            }
            i += consumed;
        }
        // Lower-casing the whole text equals lower-casing each word: the final-sigma context never
        // crosses whitespace.
        var normalized = PythonText.Lower(Nfc.Normalize(builder.ToString()));
        return string.Join(' ', SplitOnWhiteSpace(normalized));
    }

    /// <summary>
    /// OpenAI's simple_tokenizer: <c>ftfy.fix_text</c> (approximated by NFC, which is the part of
    /// ftfy that matters for ordinary prompts), HTML-unescape twice, collapse whitespace, strip,
    /// lower-case. HTML entities are decoded with <see cref="WebUtility.HtmlDecode"/> (HTML 4 names
    /// and numeric references; Python also knows the HTML 5 names and a few without ';').
    /// </summary>
    public static string OpenAI(string text)
    {
        var fixedText = Nfc.Normalize(text);
        var unescaped = WebUtility.HtmlDecode(WebUtility.HtmlDecode(fixedText));
        return PythonText.Lower(string.Join(' ', SplitOnWhiteSpace(unescaped)));
    }

    private static List<string> SplitOnWhiteSpace(string text)
    {
        var words = new List<string>();
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var space = i == text.Length || PythonText.IsWhiteSpace(text[i]);
            if (space && start >= 0)
            {
                words.Add(text[start..i]);
                start = -1;
            }
            else if (!space && start < 0)
            {
                start = i;
            }
        }
        return words;
    }

    // BERT's _is_control: tab, newline and carriage return are whitespace, every other C* category is dropped.
    private static bool IsControl(Rune rune) =>
        rune.Value is not ('\t' or '\n' or '\r') && Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control
            or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;

    // BERT's _is_chinese_char: the CJK Unified Ideographs blocks and their extensions/compatibility
    // forms (not kana or hangul, which are written with spaces between words).
    private static bool IsCjkIdeograph(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}

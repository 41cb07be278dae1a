using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>The clean-up building blocks against Python's behaviour (values printed by CPython 3.11).</summary>
public sealed class TokenizerTextTests
{
    [Theory]
    [InlineData("\u1E0A\u0323", "\u1E0C\u0307")]          // reordering then composition with the dot below
    [InlineData("\u1100\u1161\u11A8", "\uAC01")]           // Hangul jamo compose algorithmically
    [InlineData("\uAC00\u11A8", "\uAC01")]                 // LV + T
    [InlineData("A\u030A", "\u00C5")]
    [InlineData("\u0958", "\u0915\u093C")]                 // composition exclusion stays decomposed
    [InlineData("\u212B", "\u00C5")]                       // singleton (Ångström sign)
    [InlineData("\u0344", "\u0308\u0301")]                 // non-starter decomposition
    [InlineData("e\u0301\u0327", "\u0229\u0301")]          // cedilla (202) sorts before acute (230)
    [InlineData("A\u0327\u0301\u0328", "\u00C1\u0327\u0328")]
    [InlineData("\u03A9\u0345\u0301", "\u038F\u0345")]
    [InlineData("\U0001D15E", "\U0001D157\U0001D165")]     // excluded, outside the BMP
    [InlineData("a\u0308\u0301b", "\u00E4\u0301b")]
    [InlineData("plain ascii", "plain ascii")]
    [InlineData("caf\u00E9", "caf\u00E9")]
    public void NfcMatchesPython(string input, string expected) => Assert.Equal(expected, Nfc.Normalize(input));

    [Theory]
    [InlineData("HELLO World", "hello world")]
    [InlineData("\u0130stanbul", "i\u0307stanbul")]       // full case mapping: İ → i + combining dot
    [InlineData("\u039F\u0394\u039F\u03A3", "\u03BF\u03B4\u03BF\u03C2")] // final sigma
    [InlineData("\u03A3\u0391\u03A3 \u03A3", "\u03C3\u03B1\u03C2 \u03C3")]
    [InlineData("\U00010400", "\U00010428")]              // Deseret, outside the BMP
    public void LowerMatchesPython(string input, string expected) => Assert.Equal(expected, PythonText.Lower(input));

    [Theory]
    [InlineData("  lots   of\t\twhitespace \n and   newlines   ", "lots of whitespace and newlines")]
    [InlineData("a\u200Bb\u0000c\uFFFDd", "abcd")]                 // format, NUL and U+FFFD dropped
    [InlineData("x\u00A0y\u3000z", "x y z")]                       // Zs is whitespace
    [InlineData("日本語のテキスト", "日 本 語 のテキスト")]          // CJK ideographs padded, kana not
    [InlineData("cafe\u0301 NA\u00CFVE", "caf\u00E9 na\u00EFve")]
    [InlineData("&amp; stays", "&amp; stays")]
    public void TransformersCleanUp(string input, string expected) => Assert.Equal(expected, TextCleaner.Transformers(input));

    [Theory]
    [InlineData("&amp;lt;b&amp;gt; &quot;Q&quot;", "<b> \"q\"")] // unescaped twice
    [InlineData("  A\t\tB  ", "a b")]
    [InlineData("日本語", "日本語")]
    public void OpenAiCleanUp(string input, string expected) => Assert.Equal(expected, TextCleaner.OpenAI(input));

    [Theory]
    [InlineData("it's they're", "it|'s|they|'re")]
    [InlineData("3.14159", "3|.|1|4|1|5|9")]
    [InlineData("hello,world!!", "hello|,|world|!!")]
    [InlineData("!!'s", "!!'|s")]                                  // the punctuation run swallows the apostrophe
    [InlineData("!!<|endoftext|>", "!!<||endoftext||>")]           // pattern semantics: the run eats "<|" (matches "!!<|", "endoftext", "|>")
    [InlineData("<|startoftext|>hi<|endoftext|>", "<|startoftext|>|hi|<|endoftext|>")]
    [InlineData("a\U0001D400b x", "a\U0001D400b|x")]                 // a letter outside the BMP stays in the word
    [InlineData("🚀🔥 ok", "🚀🔥|ok")]
    [InlineData("²½", "²|½")]                                       // \p{N} matches one character
    public void PreTokenizerFollowsTheClipPattern(string input, string expected) =>
        Assert.Equal(expected, string.Join('|', PreTokenizer.Split(input)));
}

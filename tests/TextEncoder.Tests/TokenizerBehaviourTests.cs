using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

public sealed class TokenizerBehaviourTests : IDisposable
{
    private static readonly Lazy<ClipTokenizer> TinyTokenizer = new(() => ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory)));
    private static readonly Lazy<ClipTokenizer> RealTokenizer = new(() => ClipTokenizer.FromDirectory(SharedData.Path("data/clip-tokenizer")));
    private readonly string directory = Directory.CreateTempSubdirectory("ld-tokenizer-").FullName;

    private static ClipTokenizer Tiny => TinyTokenizer.Value;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void WhitespaceAndCaseAreNormalised() =>
        Assert.Equal(Tiny.Encode("a photo of a cat").InputIds, Tiny.Encode("  A   PHOTO\tOf\n a  CAT ").InputIds);

    [Fact]
    public void DecomposedAccentsTokeniseLikePrecomposedOnes() =>
        Assert.Equal(Tiny.EncodeIds("caf\u00E9 \u00DCber"), Tiny.EncodeIds("cafe\u0301 U\u0308ber"));

    [Fact]
    public void EmptyPromptIsBosEosAndPadding()
    {
        var encoding = Tiny.Encode("");
        Assert.Equal([Tiny.BosTokenId, Tiny.EosTokenId], encoding.UntruncatedIds);
        Assert.Equal(77, encoding.InputIds.Length);
        Assert.All(encoding.InputIds.Skip(2), id => Assert.Equal(Tiny.PadTokenId, id));
        Assert.Equal(2, encoding.AttentionMask.Sum());
        Assert.False(encoding.Truncated);
    }

    [Fact]
    public void LongPromptIsTruncatedKeepingEosLastAndSaysSo()
    {
        var prompt = string.Join(", ", Enumerable.Repeat("castle on a floating island", 20));
        var encoding = Tiny.Encode(prompt);
        var tokens = Tiny.EncodeIds(prompt);
        Assert.True(encoding.Truncated);
        Assert.Equal(tokens.Length - 75, encoding.DroppedTokenCount);
        Assert.Equal(tokens[..75], encoding.InputIds[1..76]);
        Assert.Equal(Tiny.EosTokenId, encoding.InputIds[76]);
        Assert.All(encoding.AttentionMask, m => Assert.Equal(1, m));
        Assert.Equal(tokens.Length + 2, encoding.UntruncatedIds.Length);
        Assert.Equal(77, encoding.Length);
    }

    [Fact]
    public void ExactlySeventyFiveTokensFitWithoutTruncation()
    {
        var prompt = string.Join(" ", Enumerable.Repeat("a", 75));
        var encoding = Tiny.Encode(prompt);
        Assert.False(encoding.Truncated);
        Assert.Equal(77, encoding.UntruncatedIds.Length);
        Assert.Equal(encoding.UntruncatedIds, encoding.InputIds);
        Assert.True(Tiny.Encode(prompt + " a").Truncated);
    }

    [Fact]
    public void TypedEndOfTextIsTheSpecialTokenEvenAfterPunctuation()
    {
        // transformers cuts added tokens out before the pattern runs, so "!!" does not swallow "<|".
        Assert.Equal([.. Tiny.EncodeIds("wow!!"), Tiny.EosTokenId], Tiny.EncodeIds("wow!!<|endoftext|>"));
        Assert.Equal([Tiny.BosTokenId, .. Tiny.EncodeIds("hi")], Tiny.EncodeIds("<|startoftext|>hi"));
        // OpenAI's tokenizer only has the pattern: there the run "!!<|" wins.
        var openAi = new ClipTokenizer(Tiny.Vocabulary, Tiny.Merges, Tiny.Config, ClipTokenizerOptions.OpenAI);
        Assert.DoesNotContain(Tiny.EosTokenId, openAi.EncodeIds("wow!!<|endoftext|>"));
        Assert.Equal([.. openAi.EncodeIds("wow"), Tiny.EosTokenId], openAi.EncodeIds("wow <|endoftext|>"));
    }

    [Fact]
    public void HtmlEntitiesAreKeptByTransformersAndUnescapedByOpenAi()
    {
        Assert.Equal(["&</w>", "a", "m", "p</w>", ";</w>"], Tiny.Tokenize("&amp;"));
        var openAi = new ClipTokenizer(Tiny.Vocabulary, Tiny.Merges, Tiny.Config, ClipTokenizerOptions.OpenAI);
        Assert.Equal(Tiny.EncodeIds("<b> & \"x\""), openAi.EncodeIds("&lt;b&gt; &amp;amp; &quot;x&quot;"));
    }

    [Fact]
    public void UnknownWordsFallBackToByteSymbolsNeverToUnk()
    {
        const string text = "ꙮ 𝔷𝔴 ☃ zzqxj 🜁 ǅ";
        var ids = Tiny.EncodeIds(text);
        Assert.NotEmpty(ids);
        Assert.DoesNotContain(Tiny.UnkTokenId, ids);
        Assert.Equal(TextCleaner.Transformers(text), Tiny.Decode(ids));
    }

    [Fact]
    public void DecodeJoinsWordsWithSpaces()
    {
        Assert.Equal("a photograph , of a horse !", Tiny.Decode(Tiny.EncodeIds("A photograph, of a horse!")));
        var encoding = Tiny.Encode("a horse");
        Assert.Equal("<|startoftext|>a horse <|endoftext|>", Tiny.Decode(encoding.UntruncatedIds));
        Assert.Equal("a horse", Tiny.Decode(encoding.InputIds, skipSpecialTokens: true));
    }

    [Fact]
    public void CjkIdeographsAreSeparateWordsKanaAreNot()
    {
        var tokens = Tiny.Tokenize("日本語のテキスト");
        Assert.Equal(4, tokens.Count(t => t.EndsWith("</w>", StringComparison.Ordinal)));
    }

    [Fact]
    public void PadTokenMayBeExclamationMarkAsInStableDiffusion2()
    {
        CopyTiny();
        // SD 2.x: special_tokens_map.json names "!" (a plain string or an AddedToken object).
        File.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), """{"pad_token": {"content": "!", "lstrip": false}}""");
        var tokenizer = ClipTokenizer.FromDirectory(directory);
        Assert.Equal(Tiny.Vocabulary["!"], tokenizer.PadTokenId);
        var encoding = tokenizer.Encode("a horse");
        Assert.Equal(tokenizer.PadTokenId, encoding.InputIds[^1]);
        Assert.Equal(Tiny.EosTokenId, encoding.InputIds[3]);
        Assert.Equal(4, encoding.Length);
        // transformers makes the pad token an added token, so every typed "!" becomes that id (diffusers #4153).
        Assert.Equal([.. tokenizer.EncodeIds("wow"), 0, 0, 0], tokenizer.EncodeIds("wow!!!"));
        Assert.NotEqual(tokenizer.EncodeIds("wow!!!"), Tiny.EncodeIds("wow!!!"));
    }

    [Fact]
    public void ModelMaxLengthComesFromTheConfig()
    {
        CopyTiny();
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), """{"model_max_length": 16, "pad_token": "<|endoftext|>"}""");
        var tokenizer = ClipTokenizer.FromDirectory(directory);
        Assert.Equal(16, tokenizer.ModelMaxLength);
        Assert.Equal(16, tokenizer.Encode("a horse").InputIds.Length);
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), """{"model_max_length": 1000000000000000019884624838656}""");
        Assert.Equal(77, ClipTokenizer.FromDirectory(directory).ModelMaxLength); // transformers' "unlimited"
    }

    [Fact]
    public void ConcurrentEncodingGivesTheSameIds()
    {
        var prompts = Enumerable.Range(0, 200).Select(i => $"prompt number {i} with a castle, a horse and {i % 7} moons").ToArray();
        var expected = prompts.Select(p => Tiny.Encode(p).InputIds).ToArray();
        var fresh = ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory));
        var actual = new int[prompts.Length][];
        Parallel.For(0, prompts.Length, i => actual[i] = fresh.Encode(prompts[i]).InputIds);
        Assert.Equal(expected, actual);
    }

    [SharedDataFact]
    public void RealVocabularyHandlesTrickyText()
    {
        var tokenizer = RealTokenizer.Value;
        Assert.Equal(tokenizer.EncodeIds("don't"), tokenizer.EncodeIds("DON'T"));
        Assert.Equal([272, 273, 274], tokenizer.EncodeIds("123")); // digits are single tokens
        var emoji = tokenizer.EncodeIds("🚀🔥 and 👩‍🚀");  // the zero-width joiner (a format character) is dropped
        Assert.Equal(tokenizer.EncodeIds("🚀🔥 and 👩🚀"), emoji);
        Assert.DoesNotContain(tokenizer.UnkTokenId, tokenizer.EncodeIds("ꙮ 𝔷 ☃"));
    }

    private void CopyTiny()
    {
        foreach (var file in Directory.GetFiles(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory)))
        {
            var target = Path.Combine(directory, Path.GetFileName(file));
            File.Copy(file, target, overwrite: true);
            File.SetAttributes(target, FileAttributes.Normal);
        }
    }
}

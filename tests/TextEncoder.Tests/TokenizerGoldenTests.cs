using System.Text.Json;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>
/// Golden checks #1 and #2: ids from transformers' CLIPTokenizer (4.43, slow) for tricky prompts.
/// We match the <c>noftfy</c> variant (transformers without ftfy, the default install) for every
/// prompt; where the <c>ftfy</c> variant differs (curly quotes, ligature/full-width, CJK) we assert
/// that we differ from it too, so a change of variant cannot go unnoticed.
/// </summary>
public sealed class TokenizerGoldenTests
{
    internal const string TinyDirectory = "textencoder/tokenizer_tiny";
    private static readonly Lazy<ClipTokenizer> Tiny = new(() => ClipTokenizer.FromDirectory(SharedData.Fixture(TinyDirectory)));
    private static readonly Lazy<ClipTokenizer> Full = new(() => ClipTokenizer.FromDirectory(SharedData.Path("data/clip-tokenizer")));

    public static TheoryData<int> TinyPrompts => TokenizerGoldenFile.Indices("textencoder/tokenizer_tiny.safetensors");
    public static TheoryData<int> FullPrompts => TokenizerGoldenFile.Indices("textencoder/tokenizer_clip_full.safetensors");

    [Theory]
    [MemberData(nameof(TinyPrompts))]
    public void TinyVocabularyReproducesTransformersIds(int index) => AssertMatchesGolden(Tiny.Value, TokenizerGoldenFile.Tiny, index);

    [SharedDataTheory]
    [MemberData(nameof(FullPrompts))]
    public void RealClipVocabularyReproducesTransformersIds(int index) => AssertMatchesGolden(Full.Value, TokenizerGoldenFile.ClipFull, index);

    [Fact]
    public void TinySpecialTokensAreThoseOfTheGolden()
    {
        var golden = TokenizerGoldenFile.Tiny;
        Assert.Equal(golden.BosId, Tiny.Value.BosTokenId);
        Assert.Equal(golden.EosId, Tiny.Value.EosTokenId);
        Assert.Equal(golden.PadId, Tiny.Value.PadTokenId);
        Assert.Equal(golden.VocabularySize, Tiny.Value.VocabularySize);
        Assert.Equal(77, Tiny.Value.ModelMaxLength);
    }

    [SharedDataFact]
    public void RealSpecialTokensAreThoseOfTheGolden()
    {
        var golden = TokenizerGoldenFile.ClipFull;
        Assert.Equal((golden.BosId, golden.EosId, golden.PadId, golden.VocabularySize),
            (Full.Value.BosTokenId, Full.Value.EosTokenId, Full.Value.PadTokenId, Full.Value.VocabularySize));
        Assert.Equal(48894, Full.Value.Merges.Count);
    }

    /// <summary>The README's worked example.</summary>
    [SharedDataFact]
    public void AstronautExampleFromTheDataReadme()
    {
        Assert.Equal([49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407],
            Full.Value.Encode("a photo of an astronaut riding a horse on mars").UntruncatedIds);
    }

    /// <summary>
    /// OpenAI's reference ids (clip_tokenizer_golden.json, read from ../shared) through the .gz loader
    /// with OpenAI's clean-up (HTML unescaping, specials only via the pattern).
    /// </summary>
    [SharedDataFact]
    public void OpenAiGzipLoaderReproducesSimpleTokenizerIds()
    {
        var tokenizer = ClipTokenizer.FromOpenAiBpe(SharedData.Path("data/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz"));
        using var json = JsonDocument.Parse(File.ReadAllText(SharedData.Path("data/clip-tokenizer/clip_tokenizer_golden.json")));
        var root = json.RootElement;
        Assert.Equal(root.GetProperty("start_of_text_id").GetInt32(), tokenizer.BosTokenId);
        Assert.Equal(root.GetProperty("end_of_text_id").GetInt32(), tokenizer.EosTokenId);
        Assert.Equal(root.GetProperty("vocab_size").GetInt32(), tokenizer.VocabularySize);
        var contextLength = root.GetProperty("context_length").GetInt32();
        var cases = root.GetProperty("cases").EnumerateArray().ToList();
        Assert.True(cases.Count >= 16);
        foreach (var c in cases)
        {
            var text = c.GetProperty("text").GetString()!;
            var ids = Ints(c.GetProperty("ids"));
            var withSpecials = Ints(c.GetProperty("ids_with_sot_eot"));
            Assert.True(ids.SequenceEqual(tokenizer.EncodeIds(text)), $"ids of {text}");
            Assert.Equal(c.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!), tokenizer.Tokenize(text));

            var encoding = tokenizer.Encode(text, contextLength);
            Assert.Equal(withSpecials, encoding.UntruncatedIds);
            // The json's 77-slot rule: first 76 of ids_with_sot_eot, slot 76 = eot if truncated, pad with eot.
            var expected = withSpecials.Take(contextLength).Concat(Enumerable.Repeat(tokenizer.EosTokenId, Math.Max(0, contextLength - withSpecials.Length))).ToArray();
            expected[contextLength - 1] = withSpecials.Length > contextLength ? tokenizer.EosTokenId : expected[contextLength - 1];
            Assert.Equal(expected, encoding.InputIds);
            Assert.Equal(withSpecials.Length > contextLength, encoding.Truncated);
            Assert.Equal(c.GetProperty("decoded").GetString()!.Trim(), tokenizer.Decode(ids));
            if (!ids.Contains(tokenizer.BosTokenId) && !ids.Contains(tokenizer.EosTokenId))
                Assert.Equal(tokenizer.Decode(ids), tokenizer.Decode(withSpecials, skipSpecialTokens: true));
        }
    }

    /// <summary>The manifest's openai_simple_tokenizer_ids (informational) agree with our OpenAI mode where ftfy does not matter.</summary>
    [SharedDataFact]
    public void OpenAiModeAgreesWithManifestReferenceIds()
    {
        var tokenizer = ClipTokenizer.FromOpenAiBpe(SharedData.Path("data/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz"));
        var checkedCount = 0;
        foreach (var prompt in TokenizerGoldenFile.ClipFull.Prompts)
        {
            // Prompts 7, 9 and 10 need ftfy (curly quotes, ligatures, width) which OpenAI's tokenizer ran; NFC cannot stand in.
            if (prompt.OpenAiIds is null || !prompt.VariantsAgree) continue;
            Assert.True(prompt.OpenAiIds.SequenceEqual(tokenizer.EncodeIds(prompt.Prompt)), $"prompt {prompt.Index}: {prompt.Prompt}");
            checkedCount++;
        }
        Assert.True(checkedCount >= 10);
    }

    /// <summary>The .gz and vocab.json + merges.txt are the same data (data/README.md).</summary>
    [SharedDataFact]
    public void GzipVocabularyEqualsVocabJsonAndMerges()
    {
        var fromGzip = ClipTokenizer.FromOpenAiBpe(SharedData.Path("data/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz"));
        Assert.Equal(Full.Value.Vocabulary.OrderBy(kv => kv.Key, StringComparer.Ordinal), fromGzip.Vocabulary.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        Assert.Equal(Full.Value.Merges, fromGzip.Merges);
        Assert.Equal(49408, fromGzip.VocabularySize);
    }

    private static void AssertMatchesGolden(ClipTokenizer tokenizer, TokenizerGoldenFile golden, int index)
    {
        var prompt = golden.Prompts.Single(p => p.Index == index);
        var encoding = tokenizer.Encode(prompt.Prompt);

        Assert.Equal(golden.Ids(index, "noftfy", "input_ids"), encoding.InputIds);
        Assert.Equal(golden.Ids(index, "noftfy", "attention_mask"), encoding.AttentionMask);
        Assert.Equal(golden.Ids(index, "noftfy", "input_ids_untruncated"), encoding.UntruncatedIds);
        Assert.Equal(prompt.BpeTokensNoFtfy[1..^1], tokenizer.Tokenize(prompt.Prompt));
        Assert.Equal(encoding.UntruncatedIds.Length > tokenizer.ModelMaxLength, encoding.Truncated);
        Assert.Equal(Math.Max(0, encoding.UntruncatedIds.Length - tokenizer.ModelMaxLength), encoding.DroppedTokenCount);
        Assert.All(encoding.Weights, w => Assert.Equal(1f, w));

        var ftfy = golden.Ids(index, "ftfy", "input_ids_untruncated");
        if (prompt.VariantsAgree) Assert.Equal(ftfy, encoding.UntruncatedIds);
        else Assert.NotEqual(ftfy, encoding.UntruncatedIds); // documents the variant choice: noftfy
    }

    private static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();
}

using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch.Config;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>The CLIP text config fuzzed field by field, and the tokenizer checked against the text encoder it feeds.</summary>
public class ConfigFuzzTests
{
    private const string Source = "text_encoder/config.json";

    [Fact]
    public void ClipTextConfigMutantsFailNamingTheFieldOrBuild()
    {
        var json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures/textencoder/clip/sd_tiny_text_encoder/config.json"));
        var count = ConfigFuzz.Run(json, Source, ModelConfig.Parse<ClipTextConfig>, c => new ClipTextModel(c).Dispose());
        Assert.InRange(count, 80, 600);
    }

    [Fact]
    public void ATokenizerWhoseIdsExceedVocabSizeIsRefusedNamingBoth()
    {
        var tokenizer = ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory));
        var fits = new ClipTextConfig { VocabSize = tokenizer.MaxTokenId + 1, MaxPositionEmbeddings = tokenizer.ModelMaxLength };
        TokenizerFit.Check(tokenizer, fits, "tokenizer", Source);

        var e = Assert.Throws<ConfigException>(() => TokenizerFit.Check(tokenizer, fits with { VocabSize = tokenizer.MaxTokenId }, "tokenizer", Source));
        Assert.Contains($"{Source}: field 'vocab_size' ({tokenizer.MaxTokenId})", e.Message);
        Assert.Contains("tokenizer", e.Message[Source.Length..]);

        var positions = Assert.Throws<ConfigException>(() =>
            TokenizerFit.Check(tokenizer, fits with { MaxPositionEmbeddings = tokenizer.ModelMaxLength - 1 }, "tokenizer", Source));
        Assert.Contains("field 'max_position_embeddings'", positions.Message);
    }

    [Fact]
    public void ASpecialTokenThatVocabJsonLacksIsNamedWithTheFilesThatDefineIt()
    {
        var loaded = ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory));
        // transformers gives a special token missing from vocab.json the next free id, one past the table.
        var tokenizer = new ClipTokenizer(loaded.Vocabulary, loaded.Merges, loaded.Config with { BosToken = new ClipAddedToken("NaN") });
        var config = new ClipTextConfig { VocabSize = loaded.MaxTokenId + 1, MaxPositionEmbeddings = tokenizer.ModelMaxLength };
        var e = Assert.Throws<ConfigException>(() => TokenizerFit.Check(tokenizer, config, "tokenizer", Source));
        Assert.Contains("('NaN', a special or added token of tokenizer_config.json / special_tokens_map.json that vocab.json lacks)", e.Message);
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>Tokens added after loading (transformers' add_tokens), the way textual-inversion embeddings use them.</summary>
public sealed class TokenizerAddedTokenTests
{
    private static ClipTokenizer Tiny(ClipTokenizerOptions? options = null) =>
        ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory), options);

    [Fact]
    public void AddedTokensTakeTheNextIdsAndAreCutOutBeforeBpeLongestMatchFirst()
    {
        var plain = Tiny();
        var grown = plain.WithAddedTokens(["tok", "tok_1"]);
        Assert.Equal(plain.MaxTokenId + 1, grown.TokenToId("tok"));
        Assert.Equal(plain.MaxTokenId + 2, grown.TokenToId("tok_1"));
        Assert.True(grown.IsAddedToken("tok"));
        Assert.False(plain.IsAddedToken("tok"));
        var ids = grown.EncodeIds("a tok tok_1 horse");
        Assert.Equal([.. plain.EncodeIds("a"), plain.MaxTokenId + 1, plain.MaxTokenId + 2, .. plain.EncodeIds("horse")], ids);
        // the original tokenizer is unchanged
        Assert.DoesNotContain(plain.MaxTokenId + 1, plain.EncodeIds("a tok tok_1 horse"));
    }

    [Fact]
    public void OpenAiCleaningCutsOutAddedTokensToo()
    {
        var grown = Tiny(ClipTokenizerOptions.Default with { Cleaning = ClipTextCleaning.OpenAI }).WithAddedTokens(["tok"]);
        Assert.Contains(grown.TokenToId("tok"), grown.EncodeIds("a tok"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("<|endoftext|>")]
    public void ATokenThatExistsOrIsBlankIsRefused(string token)
    {
        Assert.Throws<ArgumentException>(() => Tiny().WithAddedTokens([token]));
    }
}

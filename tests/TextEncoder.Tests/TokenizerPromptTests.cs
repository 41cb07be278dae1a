using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>AUTOMATIC1111 emphasis syntax and long-prompt chunking.</summary>
public sealed class TokenizerPromptTests
{
    private static readonly Lazy<ClipTokenizer> TinyTokenizer = new(() => ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory)));
    private static ClipTokenizer Tiny => TinyTokenizer.Value;

    private static string Show(IReadOnlyList<PromptFragment> fragments) =>
        string.Join(" | ", fragments.Select(f => f.IsBreak ? "BREAK" : $"{f.Text}:{f.Weight:0.######}"));

    // Expected values are those AUTOMATIC1111 documents for parse_prompt_attention.
    [Theory]
    [InlineData("normal text", "normal text:1")]
    [InlineData("an (important) word", "an :1 | important:1.1 |  word:1")]
    [InlineData("(unbalanced", "unbalanced:1.1")]
    [InlineData("\\(literal\\]", "(literal]:1")]
    [InlineData("(unnecessary)(parens)", "unnecessaryparens:1.1")]
    [InlineData("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        "a :1 | house:1.573 |  :1.1 | on:1 |  a :1.1 | hill:0.55 | , sun, :1.1 | sky:1.4641 | .:1.1")]
    [InlineData("((a))", "a:1.21")]
    [InlineData("[[a]]", "a:0.826446")]
    [InlineData("(a:1.5) b", "a:1.5 |  b:1")]
    [InlineData("(a : 0.7 )", "a :0.7")]
    [InlineData("a:1.5) b", "a:1.5) b:1")]                 // no open bracket: the weight is text
    [InlineData("x) y]", "x) y]:1")]                        // unmatched closers are text
    [InlineData("a \\\\ b \\c", "a \\ b c:1")]               // escaped backslash kept, lone backslash dropped
    [InlineData("time: 5 o'clock", "time: 5 o'clock:1")]
    [InlineData("", ":1")]
    [InlineData("a cat BREAK a dog", "a cat:1 | BREAK | a dog:1")]
    [InlineData("BREAKFAST", "BREAKFAST:1")]
    [InlineData("(a BREAK b)", "a:1.1 | BREAK | b:1.1")]
    [InlineData("(a:1.2.3)", "a:1.2.3):1.1")]              // not a number: text (AUTOMATIC1111 raises)
    public void ParsesAutomatic1111Syntax(string prompt, string expected) => Assert.Equal(expected, Show(PromptAttention.Parse(prompt)));

    [Fact]
    public void WeightsAlignWithTokenIds()
    {
        var encoding = Tiny.EncodePrompt("a (horse:1.5) on [mars]");
        var row = Assert.Single(encoding.Rows);
        var a = Tiny.EncodeIds("a ");
        var horse = Tiny.EncodeIds("horse");
        var on = Tiny.EncodeIds(" on ");
        var mars = Tiny.EncodeIds("mars");
        int[] tokens = [.. a, .. horse, .. on, .. mars];
        Assert.Equal([Tiny.BosTokenId, .. tokens, Tiny.EosTokenId], row.UntruncatedIds);
        Assert.Equal(row.InputIds, Tiny.Encode("a horse on mars").InputIds); // fragments happen to split at word ends
        float[] expected = [1f, .. a.Select(_ => 1f), .. horse.Select(_ => 1.5f), .. on.Select(_ => 1f), .. mars.Select(_ => (float)(1 / 1.1))];
        Assert.Equal(expected, row.Weights[..expected.Length]);
        Assert.All(row.Weights[expected.Length..], w => Assert.Equal(1f, w)); // eos and padding
        Assert.Equal(77, row.Weights.Length);
    }

    [Fact]
    public void FragmentsAreTokenisedSeparatelyAsInAutomatic1111()
    {
        Assert.Equal([Tiny.BosTokenId, .. Tiny.EncodeIds("red"), .. Tiny.EncodeIds("dish"), Tiny.EosTokenId],
            Tiny.EncodePrompt("(red)dish").UntruncatedIds);
        Assert.Equal(Tiny.Encode("(red)dish").InputIds, Tiny.EncodePrompt("(red)dish", new() { ParseWeights = false }).Rows[0].InputIds);
    }

    [Fact]
    public void TruncateModeReportsDroppedTokens()
    {
        var prompt = string.Join(" ", Enumerable.Repeat("castle", 100));
        var encoding = Tiny.EncodePrompt(prompt);
        var count = Tiny.EncodeIds(prompt).Length;
        Assert.True(encoding.Truncated);
        Assert.Equal(count - 75, encoding.DroppedTokenCount);
        Assert.Equal(count + 2, encoding.UntruncatedIds.Length);
        Assert.Equal(Tiny.Encode(prompt).InputIds, Assert.Single(encoding.Rows).InputIds);
    }

    [Fact]
    public void ChunkModeSplitsTwoHundredTokensIntoThreeRows()
    {
        var prompt = string.Join(" ", Enumerable.Range(0, 200).Select(i => i % 2 == 0 ? "a" : "horse"));
        var tokens = Tiny.EncodeIds(prompt);
        Assert.Equal(200, tokens.Length);

        var encoding = Tiny.EncodePrompt(prompt, new() { LongPrompt = LongPromptMode.Chunk });
        Assert.False(encoding.Truncated);
        Assert.Equal(3, encoding.Rows.Count);
        Assert.Equal([Tiny.BosTokenId, .. tokens, Tiny.EosTokenId], encoding.UntruncatedIds);
        var content = new List<int>();
        foreach (var row in encoding.Rows)
        {
            Assert.Equal(77, row.InputIds.Length);
            Assert.Equal(Tiny.BosTokenId, row.InputIds[0]);
            var length = row.Length;
            Assert.Equal(Tiny.EosTokenId, row.InputIds[length - 1]);
            Assert.All(row.InputIds[length..], id => Assert.Equal(Tiny.PadTokenId, id));
            content.AddRange(row.InputIds[1..(length - 1)]);
        }
        Assert.Equal(tokens, content);
        Assert.Equal([77, 77, 52], encoding.Rows.Select(r => r.Length));
    }

    [Fact]
    public void ChunkModeKeepsShortPromptsInOneRowEvenWhenEmpty()
    {
        var chunk = new PromptEncodingOptions { LongPrompt = LongPromptMode.Chunk };
        Assert.Equal(Tiny.Encode("a horse").InputIds, Assert.Single(Tiny.EncodePrompt("a horse", chunk).Rows).InputIds);
        Assert.Equal(Tiny.Encode("").InputIds, Assert.Single(Tiny.EncodePrompt("", chunk).Rows).InputIds);
        var exactly75 = string.Join(" ", Enumerable.Repeat("a", 75));
        Assert.Single(Tiny.EncodePrompt(exactly75, chunk).Rows);
        Assert.Equal(2, Tiny.EncodePrompt(exactly75 + " a", chunk).Rows.Count);
    }

    [Fact]
    public void BreakStartsANewChunk()
    {
        var encoding = Tiny.EncodePrompt("a horse BREAK on mars", new() { LongPrompt = LongPromptMode.Chunk });
        Assert.Equal(2, encoding.Rows.Count);
        Assert.Equal(Tiny.Encode("a horse").InputIds, encoding.Rows[0].InputIds);
        Assert.Equal(Tiny.Encode("on mars").InputIds, encoding.Rows[1].InputIds);
        // In truncate mode a BREAK is only a separator.
        Assert.Equal(Tiny.Encode("a horse on mars").InputIds, Tiny.EncodePrompt("a horse BREAK on mars").Rows[0].InputIds);
    }

    [Fact]
    public void CommaBacktrackMovesTheTailAfterTheLastCommaToTheNextChunk()
    {
        // 70 tokens, a comma (token 71), then 9 more: the first chunk fills at 75 tokens.
        var prompt = string.Join(" ", Enumerable.Repeat("a", 70)) + ", " + string.Join(" ", Enumerable.Repeat("horse", 9));
        var tokens = Tiny.EncodeIds(prompt);
        Assert.Equal(80, tokens.Length);

        var plain = Tiny.EncodePrompt(prompt, new() { LongPrompt = LongPromptMode.Chunk });
        Assert.Equal([77, 7], plain.Rows.Select(r => r.Length));

        var backtrack = Tiny.EncodePrompt(prompt, new() { LongPrompt = LongPromptMode.Chunk, CommaBacktrack = 20 });
        Assert.Equal([73, 11], backtrack.Rows.Select(r => r.Length)); // 71 tokens up to the comma, then 9
        Assert.Equal(tokens[..71], backtrack.Rows[0].InputIds[1..72]);
        Assert.Equal(tokens[71..], backtrack.Rows[1].InputIds[1..10]);

        var tooFar = Tiny.EncodePrompt(prompt, new() { LongPrompt = LongPromptMode.Chunk, CommaBacktrack = 3 });
        Assert.Equal([77, 7], tooFar.Rows.Select(r => r.Length));
    }

    [Fact]
    public void ChunkWeightsFollowTheirTokens()
    {
        var prompt = string.Join(" ", Enumerable.Repeat("a", 74)) + " (horse:1.4) (mars:0.5)";
        var encoding = Tiny.EncodePrompt(prompt, new() { LongPrompt = LongPromptMode.Chunk });
        Assert.Equal(2, encoding.Rows.Count);
        var horse = Tiny.EncodeIds("horse").Length;
        Assert.Equal(1, horse);
        Assert.Equal(1.4f, encoding.Rows[0].Weights[75]);
        Assert.Equal(1f, encoding.Rows[0].Weights[76]);
        Assert.All(encoding.Rows[1].Weights[1..(encoding.Rows[1].Length - 1)], w => Assert.Equal(0.5f, w));
        Assert.Equal(1f, encoding.Rows[1].Weights[0]);
    }
}

using System.Text;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>
/// The integer BPE against a direct, string-based transcription of transformers'
/// <c>CLIPTokenizer.bpe</c> loop on thousands of words, including repeated-symbol words where
/// left-to-right, non-overlapping merging matters.
/// </summary>
public sealed class BpeModelTests
{
    [Fact]
    public void MatchesTheReferenceLoopOnTheTinyVocabulary()
    {
        var tokenizer = ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory));
        AssertSameAsReference(tokenizer.Merges, Words(seed: 1, count: 4000));
    }

    [SharedDataFact]
    public void MatchesTheReferenceLoopOnTheRealVocabulary()
    {
        var tokenizer = ClipTokenizer.FromDirectory(SharedData.Path("data/clip-tokenizer"));
        AssertSameAsReference(tokenizer.Merges, Words(seed: 2, count: 4000));
    }

    private static IEnumerable<string> Words(int seed, int count)
    {
        const string letters = "etaoinshrdlucmfwypvbgkqjxz!.,'éü日🚀";
        var random = new Random(seed);
        string[] fixedWords = ["aaaaaaaa", "!!!!!!!!!!!!", "lololololol", "ssssss", "mississippi", "hahahahaha", "....", "volumetric", "artstation"];
        foreach (var word in fixedWords) yield return word;
        for (var i = 0; i < count; i++)
        {
            var length = random.Next(1, 16);
            var builder = new StringBuilder();
            while (builder.Length < length)
            {
                var index = random.Next(letters.Length);
                builder.Append(char.IsSurrogate(letters[index]) ? "🚀" : letters[index].ToString());
            }
            yield return builder.ToString();
        }
    }

    private static void AssertSameAsReference(IReadOnlyList<(string Left, string Right)> merges, IEnumerable<string> words)
    {
        var model = new BpeModel(merges.ToList(), cacheCapacity: 0);
        var ranks = new Dictionary<(string, string), int>();
        for (var i = 0; i < merges.Count; i++) ranks[merges[i]] = i;
        foreach (var word in words)
        {
            var encoded = ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(word));
            var expected = ReferenceBpe(encoded, ranks);
            var actual = string.Join(" ", model.Encode(word).Select(s => model.Symbols[s]));
            Assert.True(expected == actual, $"{word}: expected {expected}, got {actual}");
        }
    }

    // transformers' bpe(), transcribed: symbols as strings, min-rank pair, merge all occurrences.
    private static string ReferenceBpe(string token, Dictionary<(string, string), int> ranks)
    {
        var word = token[..^1].Select(c => c.ToString()).Append(token[^1] + "</w>").ToList();
        while (word.Count > 1)
        {
            var pairs = word.Zip(word.Skip(1)).ToList();
            var bigram = pairs.MinBy(p => ranks.GetValueOrDefault(p, int.MaxValue));
            if (!ranks.ContainsKey(bigram)) break;
            var next = new List<string>();
            var i = 0;
            while (i < word.Count)
            {
                var j = word.IndexOf(bigram.First, i);
                if (j < 0)
                {
                    next.AddRange(word.Skip(i));
                    break;
                }
                next.AddRange(word.Skip(i).Take(j - i));
                i = j;
                if (i < word.Count - 1 && word[i + 1] == bigram.Second)
                {
                    next.Add(bigram.First + bigram.Second);
                    i += 2;
                }
                else
                {
                    next.Add(word[i]);
                    i += 1;
                }
            }
            word = next;
        }
        return string.Join(" ", word);
    }
}

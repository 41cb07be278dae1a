using System.Text.Json;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

public sealed class BpeTrainerTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-bpe-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    // Sennrich et al.'s example: low ×5, lower ×2, newest ×6, widest ×3.
    private static readonly string[] Classic =
    [
        "low low low low low", "lower lower", "newest newest newest", "NEWEST Newest newest", "widest widest widest",
    ];

    private static readonly string[] Captions =
    [
        "a photo of a cat sitting on a red sofa",
        "A painting of a lighthouse at sunset, oil on canvas",
        "two dogs playing in the snow; photo by a friend",
        "close-up of a bee on a sunflower, macro photo, 100mm",
        "Café in Paris — people drinking coffee outside",
        "日本の桜 cherry blossoms in Kyoto",
        "an astronaut riding a horse on mars 🚀",
        "don't panic! it's only 3.14 o'clock",
        "a cat, a dog and a bird: best friends",
        "photo of a mountain lake with reflections, 8k, highly detailed",
    ];

    [Fact]
    public void LearnsTheExpectedFirstMergesWithOrdinalTieBreaking()
    {
        var vocabulary = new BpeTrainer(new BpeTrainerOptions { VocabularySize = 521 }).Train(Classic);
        // (e,s) and (s,t</w>) both occur 9 times: the ordinally smaller left symbol "e" wins.
        // Later (n,e), (e,w), (w,est</w>) tie at 6 and "e" wins again; then (n,ew) vs (ew,est</w>): "ew".
        (string, string)[] expected =
        [
            ("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w"), ("ew", "est</w>"), ("n", "ewest</w>"), ("lo", "w</w>"),
        ];
        Assert.Equal(expected, vocabulary.Merges);
        Assert.Equal(521, vocabulary.Vocabulary.Count);
        Assert.Equal(512, vocabulary.Vocabulary["es"]);
        Assert.Equal(518, vocabulary.Vocabulary["low</w>"]);
        Assert.Equal(519, vocabulary.Vocabulary["<|startoftext|>"]);
        Assert.Equal(520, vocabulary.Vocabulary["<|endoftext|>"]);
        Assert.Equal(0, vocabulary.Vocabulary["!"]);
        Assert.Equal(256, vocabulary.Vocabulary["!</w>"]);

        var tokenizer = vocabulary.CreateTokenizer();
        Assert.Equal(["newest</w>", "low</w>", "w", "i", "d", "est</w>"], tokenizer.Tokenize("newest low widest"));
    }

    [Fact]
    public void StopsWhenNoPairIsFrequentEnough()
    {
        var vocabulary = new BpeTrainer(new BpeTrainerOptions { VocabularySize = 10_000, MinPairFrequency = 6 }).Train(Classic);
        Assert.Equal(6, vocabulary.Merges.Count); // everything after (n, ewest</w>) occurs at most 5 times
        Assert.Equal(512 + 6 + 2, vocabulary.Vocabulary.Count);
    }

    [Fact]
    public void IsDeterministicAndIndependentOfLineOrder()
    {
        var options = new BpeTrainerOptions { VocabularySize = 700 };
        var first = new BpeTrainer(options).Train(Captions);
        var again = new BpeTrainer(options).Train(Captions.Reverse());
        Assert.Equal(first.Merges, again.Merges);
        Assert.Equal(first.Vocabulary.OrderBy(kv => kv.Value), again.Vocabulary.OrderBy(kv => kv.Value));
    }

    [Fact]
    public void EveryCorpusLineEncodesAndDecodesBack()
    {
        var vocabulary = new BpeTrainer(new BpeTrainerOptions { VocabularySize = 800 }).Train(Captions);
        var tokenizer = vocabulary.CreateTokenizer();
        foreach (var line in Captions)
        {
            var ids = tokenizer.EncodeIds(line);
            Assert.DoesNotContain(tokenizer.UnkTokenId, ids);
            Assert.True(ids.Length < System.Text.Encoding.UTF8.GetByteCount(line), line); // it learned something
            var words = PreTokenizer.Split(TextCleaner.Transformers(line));
            Assert.Equal(string.Join(" ", words), tokenizer.Decode(ids));
        }
        // Text it never saw still encodes, byte by byte where need be.
        var unseen = "zebra ꙮ quartz 𝔷";
        Assert.Equal(string.Join(" ", PreTokenizer.Split(TextCleaner.Transformers(unseen))), tokenizer.Decode(tokenizer.EncodeIds(unseen)));
    }

    [Fact]
    public void RoundTripsThroughTransformersFiles()
    {
        var vocabulary = new BpeTrainer(new BpeTrainerOptions { VocabularySize = 800 }).Train(Captions);
        vocabulary.Save(directory);
        Assert.Equal(["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"],
            Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var loaded = ClipTokenizer.FromDirectory(directory);
        Assert.Equal(vocabulary.Merges, loaded.Merges);
        Assert.Equal(vocabulary.Vocabulary.OrderBy(kv => kv.Value), loaded.Vocabulary.OrderBy(kv => kv.Value));
        Assert.Equal(vocabulary.Vocabulary["<|startoftext|>"], loaded.BosTokenId);
        Assert.Equal(vocabulary.Vocabulary["<|endoftext|>"], loaded.PadTokenId);
        Assert.Equal(77, loaded.ModelMaxLength);
        var inMemory = vocabulary.CreateTokenizer();
        foreach (var line in Captions) Assert.Equal(inMemory.Encode(line).InputIds, loaded.Encode(line).InputIds);

        // transformers' reader: a JSON object, keys sorted, ids matching; merges with the version header.
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "vocab.json")));
        var keys = json.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
        Assert.StartsWith("#version: 0.2\n", File.ReadAllText(Path.Combine(directory, "merges.txt")), StringComparison.Ordinal);
    }

    /// <summary>Our writer reproduces transformers' save_pretrained output byte for byte (the tiny fixture was written by it).</summary>
    [Fact]
    public void WriterReproducesTransformersFilesByteForByte()
    {
        var fixture = SharedData.Fixture(TokenizerGoldenTests.TinyDirectory);
        BpeVocabulary.From(ClipTokenizer.FromDirectory(fixture)).Save(directory);
        foreach (var name in new[] { "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json" })
        {
            Assert.True(File.ReadAllBytes(Path.Combine(fixture, name)).SequenceEqual(File.ReadAllBytes(Path.Combine(directory, name))), name);
        }
    }

    [Fact]
    public void RejectsAVocabularyTooSmallForTheByteAlphabet() =>
        Assert.Throws<ArgumentException>(() => new BpeTrainer(new BpeTrainerOptions { VocabularySize = 300 }).Train(Captions));

    [Fact]
    public void ReachesTheTargetSizeOnARichEnoughCorpus()
    {
        // Made-up words from syllables: thousands of distinct words, so merges do not run out.
        string[] syllables = ["ka", "lo", "mi", "ren", "tas", "po", "vi", "zu", "ne", "shi", "qua", "dor", "é", "ü"];
        var random = new Random(1234);
        string Word() => string.Concat(Enumerable.Range(0, random.Next(2, 5)).Select(_ => syllables[random.Next(syllables.Length)]));
        var corpus = Enumerable.Range(0, 1000).Select(_ => string.Join(" ", Enumerable.Range(0, 6).Select(_ => Word()))).ToList();
        var vocabulary = new BpeTrainer(new BpeTrainerOptions { VocabularySize = 900 }).Train(corpus);
        Assert.Equal(900, vocabulary.Vocabulary.Count);
        Assert.Equal(vocabulary.Vocabulary.Count, vocabulary.Vocabulary.Values.Distinct().Count());
        Assert.Equal(Enumerable.Range(0, 900), vocabulary.Vocabulary.Values.Order());
    }
}

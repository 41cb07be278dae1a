using System.IO.Compression;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>Broken tokenizer files fail with an exception that names the file and the line.</summary>
public sealed class TokenizerFileErrorTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-tokenizer-errors-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string GoodMerges() => Write("merges.txt", "#version: 0.2\na b\n");
    private string GoodVocabulary() => Write("vocab.json", "{\n  \"a\": 0,\n  \"b\": 1\n}\n");

    private static TokenizerFileException AssertNames(string path, long? line, Action load)
    {
        var error = Assert.Throws<TokenizerFileException>(load);
        Assert.Equal(path, error.FilePath);
        Assert.Equal(line, error.Line);
        Assert.Contains(path, error.Message);
        if (line is not null) Assert.Contains($"line {line}", error.Message);
        return error;
    }

    [Fact]
    public void VocabularyWithBrokenJsonNamesTheLine()
    {
        var vocabulary = Write("vocab.json", "{\n  \"a\": 0,\n  \"b\": 1,,\n  \"c\": 2\n}\n");
        AssertNames(vocabulary, 3, () => ClipTokenizer.FromFiles(vocabulary, GoodMerges()));
    }

    [Fact]
    public void VocabularyWithNonIntegerIdNamesTheLine()
    {
        var vocabulary = Write("vocab.json", "{\n  \"a\": 0,\n  \"b\": \"one\"\n}\n");
        var error = AssertNames(vocabulary, 3, () => ClipTokenizer.FromFiles(vocabulary, GoodMerges()));
        Assert.Contains("\"b\"", error.Message);
        var negative = Write("vocab.json", "{\"a\": -4}");
        AssertNames(negative, 1, () => ClipTokenizer.FromFiles(negative, GoodMerges()));
    }

    // Found by `ldm fuzz`: invalid UTF-8 inside a JSON string surfaced as an InvalidOperationException naming no file.
    [Fact]
    public void VocabularyWithInvalidUtf8NamesTheLine()
    {
        var vocabulary = Path.Combine(directory, "vocab.json");
        File.WriteAllBytes(vocabulary, [.. "{\n  \"a\": 0,\n  \""u8, 0xFF, 0xC0, .. "b\": 1\n}\n"u8]);
        var error = AssertNames(vocabulary, 3, () => ClipTokenizer.FromFiles(vocabulary, GoodMerges()));
        Assert.Contains("UTF-8", error.Message);
    }

    [Fact]
    public void TokenizerConfigWithInvalidUtf8NamesTheFile()
    {
        var config = Path.Combine(directory, "tokenizer_config.json");
        File.WriteAllBytes(config, [.. "{\"\u0001"u8, 0xFF, 0xC0, 0x80, .. "bos_token\": \"x\"}"u8]);
        var error = Assert.Throws<TokenizerFileException>(() => ClipTokenizerConfig.Load(directory));
        Assert.Equal(config, error.FilePath);
        Assert.Contains("UTF-8", error.Message);
    }

    [Fact]
    public void VocabularyThatIsNotAnObjectIsRejected()
    {
        var vocabulary = Write("vocab.json", "[\"a\", \"b\"]");
        AssertNames(vocabulary, 1, () => ClipTokenizer.FromFiles(vocabulary, GoodMerges()));
    }

    [Fact]
    public void MergeLineWithThreePartsNamesTheLine()
    {
        var merges = Write("merges.txt", "#version: 0.2\na b\nb c\nc d e\nd e\n");
        var error = AssertNames(merges, 4, () => ClipTokenizer.FromFiles(GoodVocabulary(), merges));
        Assert.Contains("c d e", error.Message);
        var single = Write("merges.txt", "#version: 0.2\r\na b\r\nlonely\r\n");
        AssertNames(single, 3, () => ClipTokenizer.FromFiles(GoodVocabulary(), single));
    }

    [Fact]
    public void MergesWithoutVersionHeaderAreRejected()
    {
        var merges = Write("merges.txt", "a b\nb c\n");
        AssertNames(merges, 1, () => ClipTokenizer.FromFiles(GoodVocabulary(), merges));
    }

    [Fact]
    public void MissingFilesAreNamed()
    {
        var missing = Path.Combine(directory, "nope", "merges.txt");
        AssertNames(missing, null, () => ClipTokenizer.FromFiles(GoodVocabulary(), missing));
        Assert.Throws<DirectoryNotFoundException>(() => ClipTokenizer.FromDirectory(Path.Combine(directory, "nope")));
    }

    [Fact]
    public void ConfigWithBrokenJsonNamesTheLine()
    {
        GoodVocabulary();
        GoodMerges();
        var config = Write("tokenizer_config.json", "{\n  \"model_max_length\": 77\n  \"pad_token\": \"!\"\n}");
        AssertNames(config, 3, () => ClipTokenizer.FromDirectory(directory));
        File.Delete(config);
        var map = Write("special_tokens_map.json", "{\"pad_token\": 5}");
        var error = AssertNames(map, null, () => ClipTokenizer.FromDirectory(directory));
        Assert.Contains("pad_token", error.Message);
    }

    [Fact]
    public void GzipThatIsNotGzipIsNamed()
    {
        var gz = Write("bpe.txt.gz", "not gzip at all");
        AssertNames(gz, null, () => ClipTokenizer.FromOpenAiBpe(gz));
    }

    [Fact]
    public void GzipWithCorruptMergeNamesTheLine()
    {
        var gz = Path.Combine(directory, "bpe.txt.gz");
        using (var file = File.Create(gz))
        using (var zip = new GZipStream(file, CompressionLevel.Fastest))
        using (var writer = new StreamWriter(zip))
        {
            writer.Write("bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h e x\n");
        }
        AssertNames(gz, 3, () => ClipTokenizer.FromOpenAiBpe(gz));
    }

    [Fact]
    public void TinyFixtureStillLoadsAfterAllThat() =>
        Assert.Equal(934, ClipTokenizer.FromDirectory(SharedData.Fixture(TokenizerGoldenTests.TinyDirectory)).VocabularySize);

    [Fact]
    public void VocabularyOrMergesLinkedToDevZeroAreRefusedNamingTheFileAndTheLimit()
    {
        if (!File.Exists("/dev/zero")) return;
        var vocabulary = Path.Combine(directory, "vocab-zero.json");
        File.CreateSymbolicLink(vocabulary, "/dev/zero");
        var e = Assert.Throws<Torch.FileTooLargeException>(() => ClipTokenizer.FromFiles(vocabulary, GoodMerges()));
        Assert.StartsWith($"{vocabulary}: tokenizer file is larger than the 64 MiB limit", e.Message);
        var merges = Path.Combine(directory, "merges-zero.txt");
        File.CreateSymbolicLink(merges, "/dev/zero");
        Assert.StartsWith(merges + ": ", Assert.Throws<Torch.FileTooLargeException>(() => ClipTokenizer.FromFiles(GoodVocabulary(), merges)).Message);
    }

    [Fact]
    public void AGzipThatDecompressesPastTheLimitIsRefused()
    {
        var gz = Path.Combine(directory, "bpe.txt.gz");
        using (var file = new GZipStream(File.Create(gz), CompressionLevel.Optimal))
        {
            var block = new byte[1 << 20];
            block.AsSpan().Fill((byte)'a');
            for (var i = 0; i < 65; i++) file.Write(block);
        }
        var e = Assert.Throws<Torch.FileTooLargeException>(() => ClipTokenizer.FromOpenAiBpe(gz));
        Assert.StartsWith($"{gz}: decompressed BPE vocabulary is larger than the 64 MiB limit", e.Message);
    }
}

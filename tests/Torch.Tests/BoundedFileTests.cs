using System.IO.Compression;
using LatentDiffusion.Torch.Config;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Configs and vocabularies are read with a limit counted on the bytes read, so a link to /dev/zero fails at once, naming the file.</summary>
public sealed class BoundedFileTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-bounded-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string LinkToDevZero(string name)
    {
        var link = Path.Combine(directory, name);
        File.CreateSymbolicLink(link, "/dev/zero");
        return link;
    }

    [Fact]
    public void AConfigLinkedToDevZeroIsRefusedNamingTheFileItsKindAndTheLimit()
    {
        if (!File.Exists("/dev/zero")) return;
        var config = LinkToDevZero("config.json");
        var e = Assert.Throws<FileTooLargeException>(() => ConfigJson.Load<Dictionary<string, int>>(config));
        Assert.Equal($"{config}: JSON config is larger than the 16 MiB limit (is it a link to a device such as /dev/zero?)", e.Message);
        Assert.Throws<FileTooLargeException>(() => ConfigJson.ClassName(config));
    }

    [Fact]
    public void TheLimitIsCountedOnTheBytesRead()
    {
        var path = Path.Combine(directory, "vocab.json");
        File.WriteAllBytes(path, new byte[1025]);
        Assert.Equal(1025, BoundedFile.ReadAllBytes(path, 1025, "vocabulary").Length);
        var e = Assert.Throws<FileTooLargeException>(() => BoundedFile.ReadAllText(path, 1024, "vocabulary"));
        Assert.Contains("vocabulary is larger than the 1 KiB limit", e.Message);
    }

    [Fact]
    public void ADecompressingStreamIsBoundedByItsDecompressedSize()
    {
        var path = Path.Combine(directory, "bpe.txt.gz");
        using (var gzip = new GZipStream(File.Create(path), CompressionLevel.Optimal)) gzip.Write(new byte[1 << 20]);
        Assert.True(new FileInfo(path).Length < 10_000);
        using var file = File.OpenRead(path);
        using var decompressed = new GZipStream(file, CompressionMode.Decompress);
        var e = Assert.Throws<FileTooLargeException>(() => BoundedFile.ReadAll(decompressed, path, 1 << 16, "decompressed BPE vocabulary"));
        Assert.StartsWith($"{path}: decompressed BPE vocabulary is larger than the 64 KiB limit", e.Message);
    }
}

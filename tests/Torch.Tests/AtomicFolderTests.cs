using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>AtomicFolder: the folder appears whole or not at all, and a target it cannot become is refused before the work.</summary>
public sealed class AtomicFolderTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("ld-atomic-folder-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void AFolderIsWrittenWholeAndAnExistingOneOnlyWithOverwrite()
    {
        var target = Path.Combine(root, "out");
        AtomicFolder.Write(target, overwrite: false, staging => File.WriteAllText(Path.Combine(staging, "a.txt"), "1"));
        Assert.Equal("1", File.ReadAllText(Path.Combine(target, "a.txt")));
        var e = Assert.Throws<IOException>(() => AtomicFolder.Write(target, overwrite: false, _ => Assert.Fail("must not run")));
        Assert.Contains("already exists", e.Message);
        AtomicFolder.Write(target, overwrite: true, staging => File.WriteAllText(Path.Combine(staging, "b.txt"), "2"));
        Assert.Equal(["b.txt"], Directory.GetFiles(target).Select(Path.GetFileName));
    }

    [Fact]
    public void AFailedWriteLeavesNothing()
    {
        var target = Path.Combine(root, "out");
        Assert.Throws<InvalidOperationException>(() => AtomicFolder.Write(target, false, staging =>
        {
            File.WriteAllText(Path.Combine(staging, "half.txt"), "x");
            throw new InvalidOperationException("interrupted");
        }));
        Assert.Empty(Directory.GetFileSystemEntries(root));
    }

    [Theory]
    [InlineData("file")]
    [InlineData("dangling link")]
    [InlineData("device")]
    public void AFileADanglingLinkOrADeviceIsRefusedBeforeTheWork(string kind)
    {
        var target = kind switch
        {
            "device" => "/dev/null",
            _ => Path.Combine(root, "target"),
        };
        if (kind == "file") File.WriteAllText(target, "x");
        if (kind == "dangling link") File.CreateSymbolicLink(target, Path.Combine(root, "nowhere"));
        var e = Assert.Throws<IOException>(() => AtomicFolder.Write(target, overwrite: true, _ => Assert.Fail("the work must not start")));
        Assert.Equal($"{target}: is a file, not a folder (choose a folder path)", e.Message);
    }
}

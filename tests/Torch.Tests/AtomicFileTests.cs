using System.Diagnostics;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>The one writer every command uses: links are written through, devices and FIFOs are never replaced, errors name the user's path.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-atomic-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string PathOf(string name) => Path.Combine(directory, name);

    [Fact]
    public void WritingASymbolicLinkWritesItsTargetAndKeepsTheLink()
    {
        var targetFolder = Directory.CreateDirectory(PathOf("elsewhere")).FullName;
        var target = Path.Combine(targetFolder, "image.png");
        File.WriteAllText(target, "old");
        var link = PathOf("link.png");
        File.CreateSymbolicLink(link, target);

        AtomicFile.WriteAllText(link, "new");

        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal("new", File.ReadAllText(target));
        Assert.Equal([link], Directory.GetFiles(directory)); // the temporary went beside the target, and is gone
        Assert.Equal([target], Directory.GetFiles(targetFolder));
    }

    [Fact]
    public void AChainOfLinksIsFollowedToTheFinalTargetEvenWhenItDoesNotExistYet()
    {
        var target = PathOf("final.safetensors");
        File.CreateSymbolicLink(PathOf("middle"), target);
        File.CreateSymbolicLink(PathOf("first"), PathOf("middle"));
        using var t = Tensors.Ones([2]);

        SafeTensorsFile.Save(PathOf("first"), [new("latents", t)]);

        Assert.NotNull(new FileInfo(PathOf("first")).LinkTarget);
        Assert.NotNull(new FileInfo(PathOf("middle")).LinkTarget);
        using var file = SafeTensorsFile.Open(target);
        Assert.Equal(["latents"], file.Keys);
    }

    [Theory]
    [InlineData("/dev/null")]
    [InlineData("/dev/full")]
    public void ADeviceIsRefusedAndLeftADevice(string device)
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(device)) return;
        var e = Assert.Throws<IOException>(() => AtomicFile.WriteAllText(device, "x"));
        Assert.StartsWith($"{device}: is a character device", e.Message);
        Assert.DoesNotContain(".tmp", e.Message);
        Assert.Equal("character special file", UnixKind(device));
    }

    [Fact]
    public void ALinkToADeviceIsRefusedNamingTheLink()
    {
        if (!OperatingSystem.IsLinux()) return;
        var link = PathOf("latents.safetensors");
        File.CreateSymbolicLink(link, "/dev/null");
        using var t = Tensors.Ones([2]);
        var e = Assert.Throws<IOException>(() => SafeTensorsFile.Save(link, [new("latents", t)]));
        Assert.StartsWith($"{link}: is a character device (the symbolic link points to /dev/null)", e.Message);
        Assert.Equal("/dev/null", new FileInfo(link).LinkTarget);
    }

    [Fact]
    public void AFifoIsRefusedAndLeftAFifo()
    {
        if (!OperatingSystem.IsLinux()) return;
        var fifo = PathOf("out.png");
        using (var mkfifo = Process.Start("mkfifo", [fifo])) mkfifo.WaitForExit();
        Assert.Equal("fifo", UnixKind(fifo));

        // Refused before anything opens it: opening a FIFO for writing with no reader would block.
        var e = Assert.Throws<IOException>(() => AtomicFile.WriteAllBytes(fifo, [1, 2, 3]));
        Assert.StartsWith($"{fifo}: is a FIFO", e.Message);
        Assert.Throws<IOException>(() => AtomicFile.OpenAppend(fifo));
        Assert.Equal("fifo", UnixKind(fifo));
        Assert.Equal([fifo], Directory.GetFileSystemEntries(directory));
    }

    [Fact]
    public void ADirectoryIsRefused()
    {
        var folder = Directory.CreateDirectory(PathOf("out.png")).FullName;
        var e = Assert.Throws<IOException>(() => AtomicFile.WriteAllText(folder, "x"));
        Assert.StartsWith($"{folder}: is a directory", e.Message);
    }

    [Fact]
    public void AFailedWriteLeavesNoTemporaryFileAndTheOldContent()
    {
        var path = PathOf("config.json");
        File.WriteAllText(path, "old");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.Write([1, 2, 3]);
            throw new InvalidOperationException("encoder failed");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(directory));
    }

    [Fact]
    public void AnUnwritableFolderIsReportedWithTheUsersPathNotTheTemporaryName()
    {
        if (!OperatingSystem.IsLinux()) return;
        // /proc refuses new files (even to root), as a read-only or forbidden folder would.
        var e = Assert.Throws<IOException>(() => AtomicFile.WriteAllText("/proc/o.png", "x"));
        Assert.StartsWith("/proc/o.png: cannot be written", e.Message);
        Assert.DoesNotContain(".tmp", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    private static string UnixKind(string path)
    {
        using var stat = Process.Start(new ProcessStartInfo("stat", ["-c", "%F", path]) { RedirectStandardOutput = true })!;
        var kind = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return kind;
    }
}

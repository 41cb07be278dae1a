using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>A checkpoint replaces an older folder of its step, but never deletes through a link nor replaces a file bearing its name.</summary>
public sealed class CheckpointStoreTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("ld-checkpoints-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string Write(CheckpointStore store, long step)
    {
        using var t = Tensors.Ones([2]);
        return store.Write(new CheckpointState { Step = step }, [new("w", t)], keep: 3);
    }

    [Fact]
    public void AnOlderCheckpointOfTheSameStepIsReplaced()
    {
        var store = new CheckpointStore(Path.Combine(directory, "checkpoints"));
        Write(store, 5);
        Write(store, 5);
        Assert.Equal([5L], store.List().Select(c => c.Step));
    }

    [Fact]
    public void ALinkOrAFileInTheCheckpointsPlaceIsRefusedAndLeftAlone()
    {
        var store = new CheckpointStore(Path.Combine(directory, "checkpoints"));
        Directory.CreateDirectory(store.Directory);
        var precious = Directory.CreateDirectory(Path.Combine(directory, "precious")).FullName;
        File.WriteAllText(Path.Combine(precious, "keep.txt"), "mine");
        var link = Path.Combine(store.Directory, CheckpointStore.Name(5));
        Directory.CreateSymbolicLink(link, precious);

        var e = Assert.Throws<IOException>(() => Write(store, 5));
        Assert.StartsWith($"{link}: exists and is not a checkpoint folder", e.Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(precious, "keep.txt")));
        Assert.Equal(precious, new DirectoryInfo(link).LinkTarget);

        var file = Path.Combine(store.Directory, CheckpointStore.Name(6));
        File.WriteAllText(file, "not a folder");
        Assert.Throws<IOException>(() => Write(store, 6));
        Assert.Equal("not a folder", File.ReadAllText(file));
        Assert.Empty(Directory.GetDirectories(store.Directory, ".*")); // no temporary folder left behind
    }
}

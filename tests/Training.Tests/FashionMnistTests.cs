using LatentDiffusion.Training.Data;
using Xunit;

namespace LatentDiffusion.Training.Tests;

public class FashionMnistTests
{
    [Fact]
    public void LoadsBothSplitsOfTheRealDataset()
    {
        var train = FashionMnist.Load(train: true);
        var test = FashionMnist.Load(train: false);
        Assert.Equal(60000, train.Count);
        Assert.Equal(10000, test.Count);
        Assert.Equal(60000 * 28 * 28, train.Images.Length);
        // Balanced classes: 6,000 training and 1,000 test images each.
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(6000, train.Labels.Count(l => l == c)));
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(1000, test.Labels.Count(l => l == c)));
        // The first test item is an ankle boot (class 9), as in every Fashion-MNIST loader.
        Assert.Equal(9, test.Labels[0]);
        Assert.Contains(test.Image(0).ToArray(), b => b > 200);
    }

    [Fact]
    public void MissingDirectoryNamesTheFixAndThePath()
    {
        var e = Assert.Throws<DatasetException>(() => FashionMnist.Load(true, "/nonexistent/fmnist"));
        Assert.Contains("/nonexistent/fmnist", e.Message);
        Assert.Contains("apt install dataset-fashion-mnist", e.Message);
    }

    [Theory]
    [InlineData(new byte[] { 1, 2, 8, 1, 0, 0, 0, 1, 5 }, "bad magic")]
    [InlineData(new byte[] { 0, 0, 13, 1, 0, 0, 0, 1, 5 }, "not supported")]
    [InlineData(new byte[] { 0, 0, 8, 2, 0, 0, 0, 2 }, "truncated")]
    [InlineData(new byte[] { 0, 0, 8, 1, 0, 0, 0, 3, 5, 6 }, "promises 3 elements")]
    public void CorruptIdxIsReported(byte[] bytes, string expected)
    {
        var e = Assert.Throws<DatasetException>(() => IdxFile.Parse("x.idx", bytes));
        Assert.Contains("x.idx", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ParsesAValidIdx()
    {
        var idx = IdxFile.Parse("ok", new byte[] { 0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6 });
        Assert.Equal([2, 3], idx.Shape);
        Assert.Equal([1, 2, 3, 4, 5, 6], idx.Data);
    }
}

using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;
using Xunit;

namespace LatentDiffusion.Training.Tests;

public class DataTests
{
    [Fact]
    public void SampleOrderVisitsEveryItemOncePerEpochAndIsReproducible()
    {
        var order = new SampleOrder(count: 10, batchSize: 4, seed: 42);
        var stream = Enumerable.Range(0, 5).SelectMany(b => order.Batch(b)).ToArray(); // 20 samples = two epochs
        Assert.Equal(Enumerable.Range(0, 10), stream[..10].Order());
        Assert.Equal(Enumerable.Range(0, 10), stream[10..].Order());
        Assert.NotEqual(stream[..10], stream[10..]); // a new permutation each epoch
        Assert.NotEqual(Enumerable.Range(0, 10), stream[..10]);
        // A batch depends on its number only: a fresh order (a resumed run) gives the same batch 3.
        Assert.Equal(order.Batch(3), new SampleOrder(10, 4, 42).Batch(3));
        Assert.NotEqual(order.Batch(0), new SampleOrder(10, 4, 43).Batch(0));
        Assert.Equal([0, 1, 2, 3], new SampleOrder(10, 4, 42, shuffle: false).Batch(0));
        Assert.Equal(1, order.EpochOf(3)); // samples 12–15
    }

    [Fact]
    public void SplitMixIsTheReferenceSequence()
    {
        // First outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        var g = new SplitMix64(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, g.Next());
        Assert.Equal(0x6E789E6AA1B965F4UL, g.Next());
        Assert.Equal(0x06C45D188009454FUL, g.Next());
    }

    [Fact]
    public void FashionMnistIsPaddedScaledFilteredAndFlipped()
    {
        var source = FashionMnist.Load(train: false);
        var plain = new FashionMnistDataset(source, imageSize: 32);
        using var batch = plain.GetBatch([0], 0);
        Assert.Equal([1L, 1, 32, 32], batch.Data.Shape);
        var pixels = batch.Data.ToArray<float>();
        // The 2-pixel border is background (−1); inside, pixel (y, x) is image[y−2, x−2] / 127.5 − 1.
        Assert.All(Enumerable.Range(0, 32), x => Assert.Equal(-1f, pixels[x]));
        var image = source.Image(0);
        Assert.Equal(image[5 * 28 + 7] / 127.5f - 1f, pixels[(5 + 2) * 32 + 7 + 2], 6);
        using var labels = batch.Labels!;
        Assert.Equal(9, labels.ItemInt64());

        var boots = new FashionMnistDataset(source, labels: [9], limit: 50);
        Assert.Equal(50, boots.Count);
        Assert.All(Enumerable.Range(0, 50), i => Assert.Equal(9, boots.Label(i)));

        // With random_flip, about half the items come out mirrored, the same ones for the same seed.
        var flipping = new FashionMnistDataset(source, randomFlip: true);
        var indices = Enumerable.Range(0, 64).ToArray();
        using var a = flipping.GetBatch(indices, 5);
        using var b = flipping.GetBatch(indices, 5);
        using var unflipped = plain.GetBatch(indices, 5);
        Assert.True(a.Data.Equal(b.Data));
        using var mirrored = unflipped.Data.Flip(3);
        int flipped = 0;
        for (int i = 0; i < 64; i++)
        {
            using var item = a.Data[i];
            using var same = unflipped.Data[i];
            using var mirror = mirrored[i];
            if (!item.Equal(same)) { Assert.True(item.Equal(mirror)); flipped++; }
        }
        Assert.InRange(flipped, 16, 48);
    }

    [Fact]
    public void ImageFolderResizesCropsAndScales()
    {
        var dir = TestDirectory.Create();
        try
        {
            // A 60×40 image, left half red, right half blue, and a 20×20 white one in a subfolder.
            var wide = RgbImage.Filled(60, 40, new Rgb(0, 0, 255));
            for (int y = 0; y < 40; y++)
                for (int x = 0; x < 30; x++) wide.SetPixel(x, y, new Rgb(255, 0, 0));
            wide.SavePng(Path.Combine(dir, "a.png"));
            Directory.CreateDirectory(Path.Combine(dir, "sub"));
            RgbImage.Filled(20, 20, Rgb.White).SavePng(Path.Combine(dir, "sub", "b.png"));
            File.WriteAllText(Path.Combine(dir, "notes.txt"), "not an image");

            var dataset = new ImageFolderDataset(dir, imageSize: 16);
            Assert.Equal(2, dataset.Count);
            using var batch = dataset.GetBatch([0, 1], 0);
            Assert.Equal([2L, 3, 16, 16], batch.Data.Shape);
            var p = batch.Data.ToArray<float>();
            int plane = 256;
            Assert.Equal(1f, p[0 * plane + 8 * 16 + 1]);   // red channel, left side of a.png
            Assert.Equal(-1f, p[2 * plane + 8 * 16 + 1]);  // blue channel, left side
            Assert.Equal(1f, p[2 * plane + 8 * 16 + 14]);  // blue channel, right side
            Assert.All(p[(3 * plane)..], v => Assert.Equal(1f, v)); // b.png is white

            var grey = new ImageFolderDataset(dir, imageSize: 16, channels: 1, limit: 1);
            using var g = grey.GetBatch([0], 0);
            Assert.Equal([1L, 1, 16, 16], g.Data.Shape);
            Assert.Equal((76 / 127.5f) - 1f, g.Data.ToArray<float>()[8 * 16 + 1], 5); // luma of pure red = 76

            Assert.Throws<DatasetException>(() => new ImageFolderDataset(Path.Combine(dir, "missing"), 16));

            // Captions: a sidecar text file, else metadata.jsonl; a missing one is named.
            Assert.Contains("b.png: no caption", Assert.Throws<DatasetException>(() =>
            {
                File.WriteAllText(Path.Combine(dir, "a.txt"), "red and blue\n");
                return new ImageFolderDataset(dir, 16, withCaptions: true);
            }).Message);
            File.WriteAllText(Path.Combine(dir, "metadata.jsonl"), "{\"file_name\": \"sub/b.png\", \"text\": \"a white square\"}\n");
            var captioned = new ImageFolderDataset(dir, 16, withCaptions: true);
            using (var c = captioned.GetBatch([1, 0], 0)) Assert.Equal(["a white square", "red and blue"], c.Captions!);
            var options = new DataOptions { Type = "image-folder", Directory = dir, ImageSize = 16 }.Validate("r.json");
            Assert.Equal(2, options.Open().Count);
            Assert.Contains("'data.directory'", Assert.Throws<RecipeException>(() => new DataOptions { Type = "image-folder" }.Validate("r.json")).Message);
        }
        finally
        {
            TestDirectory.Delete(dir);
        }
    }
}

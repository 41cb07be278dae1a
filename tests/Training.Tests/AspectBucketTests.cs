using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Lora;
using LatentDiffusion.Training.Recipes;
using Xunit;

namespace LatentDiffusion.Training.Tests;

/// <summary>
/// kohya-ss's aspect-ratio bucketing (sd-scripts' BucketManager). The expected buckets and assignments were computed by a
/// transcription of sd-scripts' make_bucket_resolutions and select_bucket (library/train_util.py, model_util.py), run in Python.
/// </summary>
public sealed class AspectBucketTests : IDisposable
{
    private readonly string dir = TestDirectory.Create();

    public void Dispose() => TestDirectory.Delete(dir);

    private static (int, int)[] Sizes(IEnumerable<BucketSize> buckets) => [.. buckets.Select(b => (b.Width, b.Height))];

    [Fact]
    public void TheBucketsAreKohyas()
    {
        // make_bucket_resolutions((512, 512), 256, 1024, 64): sd-scripts' defaults at SD 1.x's resolution
        Assert.Equal([(256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640), (448, 576), (512, 512),
            (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256), (1024, 256)],
            Sizes(AspectBuckets.Resolutions(512, 512, 256, 1024, 64)));
        // make_bucket_resolutions((1024, 1024), 256, 2048, 64): SDXL's usual settings
        Assert.Equal([(256, 2048), (320, 2048), (384, 2048), (448, 2048), (512, 1856), (512, 1920), (512, 1984), (512, 2048), (576, 1664),
            (576, 1728), (576, 1792), (640, 1536), (640, 1600), (704, 1408), (704, 1472), (768, 1280), (768, 1344), (832, 1216), (896, 1152),
            (960, 1088), (1024, 1024), (1088, 960), (1152, 896), (1216, 832), (1280, 768), (1344, 768), (1408, 704), (1472, 704), (1536, 640),
            (1600, 640), (1664, 576), (1728, 576), (1792, 576), (1856, 512), (1920, 512), (1984, 512), (2048, 256), (2048, 320), (2048, 384),
            (2048, 448), (2048, 512)],
            Sizes(AspectBuckets.Resolutions(1024, 1024, 256, 2048, 64)));
        // the settings of the training test below
        Assert.Equal([(32, 96), (32, 112), (32, 128), (48, 80), (64, 64), (80, 48), (96, 32), (112, 32), (128, 32)],
            Sizes(new AspectBuckets(new BucketOptions(64, 32, 128, 16)).Predefined));
        Assert.Empty(new AspectBuckets(new BucketOptions(512, NoUpscale: true)).Predefined);
    }

    // image size → kohya's (bucket, resized size) at resolution 512, min 256, max 1024, step 64; with bucket_no_upscale the image
    // is shrunk to 512² when larger (one side rounded to the step) and its bucket cut from that size, never enlarged
    [Theory]
    [InlineData(false, 1000, 750, 576, 448, 597, 448)]
    [InlineData(false, 333, 999, 256, 832, 277, 832)]
    [InlineData(false, 640, 480, 576, 448, 597, 448)]
    [InlineData(false, 512, 512, 512, 512, 512, 512)]
    [InlineData(false, 1920, 1080, 640, 384, 683, 384)]
    [InlineData(false, 700, 300, 768, 320, 768, 329)]
    [InlineData(false, 257, 1023, 256, 1024, 257, 1024)]
    [InlineData(false, 600, 601, 512, 512, 512, 513)]
    [InlineData(false, 80, 64, 576, 448, 576, 461)]   // small images are enlarged to cover their bucket
    [InlineData(false, 120, 40, 832, 256, 832, 277)]
    [InlineData(true, 1000, 750, 512, 384, 512, 384)]
    [InlineData(true, 333, 999, 256, 768, 256, 768)]
    [InlineData(true, 1920, 1080, 640, 384, 683, 384)]
    [InlineData(true, 700, 300, 640, 256, 700, 300)]
    [InlineData(true, 257, 1023, 256, 960, 256, 1019)]
    [InlineData(true, 600, 601, 512, 512, 512, 513)]
    [InlineData(true, 80, 64, 64, 64, 80, 64)]
    public void EachImageGoesWhereKohyaPutsIt(bool noUpscale, int width, int height, int bucketWidth, int bucketHeight, int resizedWidth, int resizedHeight)
    {
        var a = new AspectBuckets(new BucketOptions(512, NoUpscale: noUpscale)).Select(width, height);
        Assert.Equal(new BucketAssignment(new BucketSize(bucketWidth, bucketHeight), resizedWidth, resizedHeight), a);
    }

    [Fact]
    public void AnImageThatLeavesNoBucketAndBadSettingsAreOneLine()
    {
        // kohya's bucket would be 64x0 here
        var e = Assert.Throws<DatasetException>(() => new AspectBuckets(new BucketOptions(512, NoUpscale: true)).Select(120, 40));
        Assert.Equal("120x40: with bucket_no_upscale a side below bucket_reso_steps 64 leaves no bucket (the bucket would be 64x0)", e.Message);

        string Problem(string data) => Assert.Throws<RecipeException>(() => LoraRecipe.Parse(
            $$"""{ "model": "m", "data": { "folder": "x", "resolution": 64, "enable_bucket": true, {{data}} } }""", "r.json").Validate()).Message;
        Assert.Equal("r.json: 'data.bucket_reso_steps' must be a positive multiple of 8 (the VAE's factor; got 12)", Problem("\"bucket_reso_steps\": 12"));
        Assert.Equal("r.json: 'data.min_bucket_reso' must be a positive multiple of bucket_reso_steps 16 (got 40)",
            Problem("\"bucket_reso_steps\": 16, \"min_bucket_reso\": 40"));
        Assert.Equal("r.json: 'data.max_bucket_reso' 48 must not be below the resolution 64",
            Problem("\"bucket_reso_steps\": 16, \"min_bucket_reso\": 32, \"max_bucket_reso\": 48"));
    }

    [Fact]
    public void ABucketedOrderDrawsEveryBatchFromOneBucketAndDependsOnlyOnItsNumber()
    {
        int[][] buckets = [[0, 1, 2], [3, 4], [5]];
        var order = SampleOrder.Bucketed(buckets, batchSize: 2, seed: 5);
        // 2 + 1 + 1 batches per epoch; each epoch's batches hold every item, the short ones filled from their own bucket
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var batches = Enumerable.Range(epoch * 4, 4).Select(k => order.Batch(k)).ToArray();
            Assert.All(batches, b => Assert.Equal(2, b.Length));
            Assert.All(batches, b => Assert.Single(buckets, bucket => b.All(bucket.Contains)));
            Assert.Equal(Enumerable.Range(0, 6), batches.SelectMany(b => b).Distinct().Order());
            Assert.Equal(epoch, order.EpochOf(epoch * 4 + 3));
        }
        // a fresh order (a resumed run) gives the same batch 9; another seed another stream
        Assert.Equal(order.Batch(9), SampleOrder.Bucketed(buckets, 2, 5).Batch(9));
        Assert.NotEqual(Enumerable.Range(0, 8).Select(k => order.Batch(k)), Enumerable.Range(0, 8).Select(k => SampleOrder.Bucketed(buckets, 2, 6).Batch(k)));
        Assert.Equal([[0, 1], [2, 0], [3, 4], [5, 5]], Enumerable.Range(0, 4).Select(k => SampleOrder.Bucketed(buckets, 2, 5, shuffle: false).Batch(k)));
    }

    [Fact]
    public void AKohyaFolderIsBucketedResizedToCoverAndCentreCropped()
    {
        var folder = Directory.CreateDirectory(Path.Combine(dir, "3_subject")).FullName;
        // 80×64: green with an 8-pixel red left edge and blue right edge, which the centre crop to 64×64 removes
        var wide = RgbImage.Filled(80, 64, new Rgb(0, 255, 0));
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 8; x++)
            {
                wide.SetPixel(x, y, new Rgb(255, 0, 0));
                wide.SetPixel(79 - x, y, new Rgb(0, 0, 255));
            }
        wide.SavePng(Path.Combine(folder, "a.png"));
        RgbImage.Filled(64, 96, new Rgb(9, 9, 9)).SavePng(Path.Combine(folder, "b.png"));
        RgbImage.Filled(120, 40, new Rgb(9, 9, 9)).SavePng(Path.Combine(folder, "c.png"));
        foreach (var name in new[] { "a", "b", "c" }) File.WriteAllText(Path.Combine(folder, name + ".txt"), name);

        var dataset = new KohyaFolderDataset(dir, 64, bucketing: new BucketOptions(64, 32, 128, 16));
        Assert.Equal(9, dataset.Count);
        Assert.Equal([new BucketAssignment(new BucketSize(64, 64), 80, 64), new BucketAssignment(new BucketSize(48, 80), 53, 80),
            new BucketAssignment(new BucketSize(96, 32), 96, 32)], dataset.Assignments!);
        // buckets sorted by size, the repeats of an image in its bucket
        Assert.Equal([[3, 4, 5], [0, 1, 2], [6, 7, 8]], dataset.Buckets!);
        Assert.Equal([3L, 64, 64], dataset.ItemShape); // the largest bucket

        using var batch = dataset.GetBatch([0, 1], 0);
        Assert.Equal([2L, 3, 64, 64], batch.Data.Shape);
        Assert.Equal(["a", "a"], batch.Captions);
        var pixels = batch.Data.ToArray<float>();
        Assert.All(pixels[..(64 * 64)], v => Assert.Equal(-1f, v));                  // red: none left
        Assert.All(pixels[(64 * 64)..(2 * 64 * 64)], v => Assert.Equal(1f, v));       // green everywhere
        using var tall = dataset.GetBatch([3], 0);
        Assert.Equal([1L, 3, 80, 48], tall.Data.Shape);

        var e = Assert.Throws<ArgumentException>(() => dataset.GetBatch([0, 3], 0));
        Assert.StartsWith("a batch mixes buckets 64x64 and 48x80", e.Message);
    }
}

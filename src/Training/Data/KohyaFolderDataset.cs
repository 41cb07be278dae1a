using System.Globalization;
using System.Text.RegularExpressions;
using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// A captioned image folder in kohya-ss's convention: images with same-name .txt captions in sub-folders whose name gives the
/// repeats, <c>10_subject/</c> (each image counted 10 times per epoch); an image outside such a folder counts once. Images are
/// resized and centre-cropped to a square (<see cref="ImageFolderDataset"/>), or, with <see cref="BucketOptions"/> (kohya's
/// enable_bucket), each to the bucket of its aspect ratio (<see cref="AspectBuckets"/>): resized to cover it, centre-cropped.
/// </summary>
public sealed partial class KohyaFolderDataset : IBucketedDataset
{
    private readonly ImageFolderDataset images;
    private readonly int[] items;
    private readonly BucketAssignment[]? assignments; // per image
    private readonly int[][]? buckets;
    private readonly byte[]?[]? bucketCache;

    public KohyaFolderDataset(string directory, int resolution, bool randomFlip = false, BucketOptions? bucketing = null)
    {
        images = new ImageFolderDataset(directory, resolution, 3, randomFlip, withCaptions: true);
        var root = Path.GetFullPath(directory);
        items = [.. Enumerable.Range(0, images.Count).SelectMany(i => Enumerable.Repeat(i, Repeats(root, images.Files[i])))];
        Bucketing = bucketing;
        if (bucketing is null) return;

        var manager = new AspectBuckets(bucketing);
        assignments = [.. images.Files.Select(file => Assign(manager, file))];
        // kohya sorts its buckets by size (BucketManager.sort); within a bucket the items keep the folder's order
        buckets = [.. Enumerable.Range(0, items.Length).GroupBy(i => assignments[items[i]].Bucket)
            .OrderBy(g => g.Key.Width).ThenBy(g => g.Key.Height).Select(g => g.ToArray())];
        if (assignments.Sum(a => 3L * a.Bucket.Width * a.Bucket.Height) <= ImageFolderDataset.CacheLimitBytes) bucketCache = new byte[]?[images.Count];
    }

    private static BucketAssignment Assign(AspectBuckets manager, string file)
    {
        try
        {
            var info = ImageDecoder.ReadInfo(file);
            return manager.Select(info.Width, info.Height);
        }
        catch (Exception e) when (e is ImageLoadException or DatasetException)
        {
            throw new DatasetException($"{file}: {e.Message}");
        }
    }

    public int Count => items.Length;

    /// <summary>[3, resolution, resolution]; with buckets, the shape of the largest bucket (the memory check's worst case).</summary>
    public IReadOnlyList<long> ItemShape
    {
        get
        {
            if (assignments is null) return images.ItemShape;
            var largest = assignments.Select(a => a.Bucket).MaxBy(b => (long)b.Width * b.Height);
            return [3, largest.Height, largest.Width];
        }
    }

    public ImageFolderDataset Images => images;

    public IReadOnlyList<int[]>? Buckets => buckets;

    public BucketOptions? Bucketing { get; }

    /// <summary>With bucketing, each image's bucket and resize (in <see cref="ImageFolderDataset.Files"/> order); null without.</summary>
    public IReadOnlyList<BucketAssignment>? Assignments => assignments;

    [GeneratedRegex(@"^(\d+)_", RegexOptions.CultureInvariant)]
    private static partial Regex RepeatPrefix();

    private static int Repeats(string root, string file)
    {
        var relative = Path.GetRelativePath(root, Path.GetFullPath(file));
        var first = relative.Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar)[0];
        if (first == relative) return 1;
        var match = RepeatPrefix().Match(first);
        if (!match.Success) return 1;
        return int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 10_000
            ? n
            : throw new DatasetException($"{Path.Combine(root, first)}: the repeat count {match.Groups[1].Value} must be between 1 and 10000");
    }

    public Batch GetBatch(ReadOnlySpan<int> indices, ulong augmentationSeed, int firstRow = 0)
    {
        var mapped = new int[indices.Length];
        for (var i = 0; i < mapped.Length; i++) mapped[i] = items[indices[i]];
        if (assignments is null) return images.GetBatch(mapped, augmentationSeed, firstRow);

        var bucket = assignments[mapped[0]].Bucket;
        if (mapped.FirstOrDefault(i => assignments[i].Bucket != bucket, -1) is var other and >= 0)
            throw new ArgumentException($"a batch mixes buckets {bucket} and {assignments[other].Bucket}; draw each batch from one bucket", nameof(indices));
        var captions = images.Captions!;
        return ImageFolderDataset.ImageBatch(mapped, bucket.Width, bucket.Height, 3, images.RandomFlip, augmentationSeed, firstRow, BucketPixels,
            [.. mapped.Select(i => captions[i])]);
    }

    /// <summary>Interleaved RGB of image <paramref name="index"/>: resized to cover its bucket (bilinear, as the square path), centre-cropped.</summary>
    public byte[] BucketPixels(int index)
    {
        if (bucketCache?[index] is { } cached) return cached;
        var a = assignments![index];
        RgbImage image;
        try
        {
            image = ImageDecoder.Load(images.Files[index]).ToRgb();
        }
        catch (ImageLoadException e)
        {
            throw new DatasetException($"{images.Files[index]}: {e.Message}");
        }
        if (image.Width != a.ResizedWidth || image.Height != a.ResizedHeight) image = image.Resize(a.ResizedWidth, a.ResizedHeight, ResizeFilter.Bilinear);
        var (left, top) = a.CropOrigin;
        var pixels = image.Crop(left, top, a.Bucket.Width, a.Bucket.Height).Pixels;
        if (bucketCache is not null) bucketCache[index] = pixels;
        return pixels;
    }
}

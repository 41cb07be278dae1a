using System.Globalization;
using System.Text.RegularExpressions;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// A captioned image folder in kohya-ss's convention: images with same-name .txt captions in sub-folders whose name gives the
/// repeats, <c>10_subject/</c> (each image counted 10 times per epoch); an image outside such a folder counts once. Images are
/// resized and centre-cropped to a square (<see cref="ImageFolderDataset"/>).
/// </summary>
public sealed partial class KohyaFolderDataset : IDataset
{
    private readonly ImageFolderDataset images;
    private readonly int[] items;

    public KohyaFolderDataset(string directory, int resolution, bool randomFlip = false)
    {
        images = new ImageFolderDataset(directory, resolution, 3, randomFlip, withCaptions: true);
        var root = Path.GetFullPath(directory);
        items = [.. Enumerable.Range(0, images.Count).SelectMany(i => Enumerable.Repeat(i, Repeats(root, images.Files[i])))];
    }

    public int Count => items.Length;
    public IReadOnlyList<long> ItemShape => images.ItemShape;
    public ImageFolderDataset Images => images;

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
        return images.GetBatch(mapped, augmentationSeed, firstRow);
    }
}

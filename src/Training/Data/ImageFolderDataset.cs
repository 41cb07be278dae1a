using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Data;

/// <summary>
/// Every image file under a folder (recursively, in ordinal path order so the item numbering is
/// stable), decoded (SkiaSharp) on the loader thread, resized so the shorter side is
/// <see cref="ImageSize"/> and centre-cropped to a square (diffusers' Resize + CenterCrop), scaled
/// to [−1, 1], optionally mirrored at random. Decoded images are kept in memory after their first
/// use when the whole set fits in <see cref="CacheLimitBytes"/>. With captions (for text-to-image
/// training), each image's caption is its sidecar text file (<c>photo.png</c> → <c>photo.txt</c>) or
/// else its "text" in a <c>metadata.jsonl</c> at the root (Hugging Face imagefolder's convention:
/// one <c>{"file_name": "photo.png", "text": "…"}</c> per line).
/// </summary>
public sealed class ImageFolderDataset : IDataset
{
    public static readonly IReadOnlySet<string> Extensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga",
    };

    public const long CacheLimitBytes = 1L << 30;

    private readonly string[] files;
    private readonly byte[]?[]? cache;
    private readonly string[]? captions;

    public string Root { get; }
    public int ImageSize { get; }
    public int Channels { get; }
    public bool RandomFlip { get; }
    public int Count => files.Length;
    public IReadOnlyList<long> ItemShape => [Channels, ImageSize, ImageSize];
    public IReadOnlyList<string> Files => files;
    public IReadOnlyList<string>? Captions => captions;

    public ImageFolderDataset(string directory, int imageSize, int channels = 3, bool randomFlip = false, int? limit = null, bool withCaptions = false)
    {
        if (imageSize <= 0) throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, "the image size must be positive");
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "images have 1 or 3 channels");
        if (!Directory.Exists(directory)) throw new DatasetException($"{directory}: image folder not found");
        Root = directory;
        ImageSize = imageSize;
        Channels = channels;
        RandomFlip = randomFlip;
        var found = Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f)))
            .Order(StringComparer.Ordinal);
        files = (limit is { } n ? found.Take(n) : found).ToArray();
        if (files.Length == 0)
            throw new DatasetException($"{directory}: no images ({string.Join(", ", Extensions.Order())}) found");
        if ((long)files.Length * imageSize * imageSize * channels <= CacheLimitBytes) cache = new byte[]?[files.Length];
        if (withCaptions) captions = ReadCaptions(directory, files);
    }

    private static string[] ReadCaptions(string root, string[] files)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var metadataPath = Path.Combine(root, "metadata.jsonl");
        if (File.Exists(metadataPath))
        {
            int line = 0;
            foreach (var text in File.ReadLines(metadataPath))
            {
                line++;
                if (string.IsNullOrWhiteSpace(text)) continue;
                try
                {
                    var node = System.Text.Json.Nodes.JsonNode.Parse(text);
                    var name = node?["file_name"]?.GetValue<string>() ?? throw new DatasetException($"{metadataPath}:{line}: no \"file_name\"");
                    metadata[Path.GetFullPath(name, root)] = node?["text"]?.GetValue<string>() ?? throw new DatasetException($"{metadataPath}:{line}: no \"text\"");
                }
                catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
                {
                    throw new DatasetException($"{metadataPath}:{line}: not a JSON object with string file_name and text ({e.Message})");
                }
            }
        }
        return files.Select(file =>
        {
            var sidecar = Path.ChangeExtension(file, ".txt");
            if (File.Exists(sidecar)) return File.ReadAllText(sidecar).Trim();
            return metadata.TryGetValue(Path.GetFullPath(file), out var caption) ? caption
                : throw new DatasetException($"{file}: no caption ({Path.GetFileName(sidecar)} beside it, or an entry in metadata.jsonl)");
        }).ToArray();
    }

    public Batch GetBatch(ReadOnlySpan<int> indices, ulong augmentationSeed, int firstRow = 0)
    {
        var batchCaptions = captions is null ? null : indices.ToArray().Select(i => captions[i]).ToArray();
        return ImageBatch(indices, ImageSize, ImageSize, Channels, RandomFlip, augmentationSeed, firstRow, Pixels, batchCaptions);
    }

    /// <summary>
    /// Stacks interleaved 8-bit images of one size into [n, C, H, W] in [−1, 1], each mirrored when its draw says so (one draw
    /// per row of the seed's stream, from <paramref name="firstRow"/>; flipped only with <paramref name="randomFlip"/>).
    /// </summary>
    internal static Batch ImageBatch(ReadOnlySpan<int> indices, int width, int height, int channels, bool randomFlip, ulong augmentationSeed,
        int firstRow, Func<int, byte[]> pixelsOf, IReadOnlyList<string>? captions)
    {
        int plane = width * height, n = indices.Length;
        var data = new float[n * channels * plane];
        var rng = new SplitMix64(augmentationSeed);
        rng.Skip(firstRow); // one draw per row
        for (int b = 0; b < n; b++)
        {
            var pixels = pixelsOf(indices[b]);
            bool flip = rng.Next() >> 63 == 1 && randomFlip;
            var offset = b * channels * plane;
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    var source = (y * width + (flip ? width - 1 - x : x)) * channels;
                    for (int c = 0; c < channels; c++)
                        data[offset + c * plane + y * width + x] = pixels[source + c] / 127.5f - 1f;
                }
        }
        return new Batch(Tensor.From(data, n, channels, height, width), captions: captions);
    }

    /// <summary>Interleaved pixels (RGB, or grey) of item <paramref name="index"/> at the training size.</summary>
    public byte[] Pixels(int index)
    {
        if (cache?[index] is { } cached) return cached;
        RgbImage image;
        try
        {
            image = ImageDecoder.Load(files[index]).ResizeAndCrop(ImageSize, ImageSize, ResizeFilter.Bilinear);
        }
        catch (ImageLoadException e)
        {
            throw new DatasetException($"{files[index]}: {e.Message}");
        }
        var pixels = Channels == 3 ? image.ToRgb().Pixels : image.ToLuma();
        if (cache is not null) cache[index] = pixels;
        return pixels;
    }
}

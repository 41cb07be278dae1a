namespace LatentDiffusion.Training.Data;

/// <summary>
/// Fashion-MNIST from the IDX files of Debian's dataset-fashion-mnist package: 60,000 training and
/// 10,000 test images, 28×28 grey levels, ten clothing classes.
/// </summary>
public sealed class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const int Side = 28;

    public static readonly IReadOnlyList<string> ClassNames =
    [
        "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
    ];

    /// <summary>Row-major 28×28 grey images, one after the other (0 = background, 255 = ink).</summary>
    public byte[] Images { get; }
    public byte[] Labels { get; }
    public int Count => Labels.Length;

    private FashionMnist(byte[] images, byte[] labels)
    {
        Images = images;
        Labels = labels;
    }

    /// <summary>The 28×28 pixels of item <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> Image(int index) => Images.AsSpan(index * Side * Side, Side * Side);

    public static FashionMnist Load(bool train, string? directory = null)
    {
        directory ??= Environment.GetEnvironmentVariable("FASHION_MNIST_DIR") ?? DefaultDirectory;
        if (!Directory.Exists(directory))
            throw new DatasetException($"Fashion-MNIST not found at {directory}: install it with `apt install dataset-fashion-mnist` or set FASHION_MNIST_DIR");
        var prefix = train ? "train" : "t10k";
        var images = IdxFile.Read(Find(directory, $"{prefix}-images-idx3-ubyte"));
        var labels = IdxFile.Read(Find(directory, $"{prefix}-labels-idx1-ubyte"));
        if (images.Shape.Length != 3 || images.Shape[1] != Side || images.Shape[2] != Side)
            throw new DatasetException($"{directory}: {prefix} images are [{string.Join(", ", images.Shape)}], expected [N, 28, 28]");
        if (labels.Shape.Length != 1 || labels.Shape[0] != images.Shape[0])
            throw new DatasetException($"{directory}: {prefix} has {images.Shape[0]} images but {labels.Data.Length} labels");
        foreach (var label in labels.Data)
        {
            if (label >= ClassNames.Count) throw new DatasetException($"{directory}: {prefix} label {label} is not a Fashion-MNIST class (0–9)");
        }
        return new FashionMnist(images.Data, labels.Data);
    }

    private static string Find(string directory, string name)
    {
        foreach (var candidate in new[] { name, name + ".gz" })
        {
            var path = Path.Combine(directory, candidate);
            if (File.Exists(path)) return path;
        }
        throw new DatasetException($"{Path.Combine(directory, name)}(.gz): file not found; install Fashion-MNIST with `apt install dataset-fashion-mnist`");
    }
}

using System.Text.Json.Serialization;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Recipes;

/// <summary>
/// The "data" section of an image recipe: which images, at what size. <c>type</c> is
/// "fashion-mnist" (Debian's dataset-fashion-mnist IDX files, 28×28 padded to image_size) or
/// "image-folder" (every PNG/JPEG/BMP/GIF/TGA under <c>directory</c>, resized and centre-cropped).
/// </summary>
public sealed record DataOptions
{
    [JsonPropertyName("type")] public string Type { get; init; } = "fashion-mnist";

    /// <summary>Fashion-MNIST: the IDX folder (default: FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist). Image folder: required.</summary>
    [JsonPropertyName("directory")] public string? Directory { get; init; }

    /// <summary>Fashion-MNIST split: "train" (60,000 images) or "test" (10,000).</summary>
    [JsonPropertyName("split")] public string Split { get; init; } = "train";

    [JsonPropertyName("image_size")] public int ImageSize { get; init; } = 32;

    /// <summary>Image folder: 3 (RGB) or 1 (grey, ITU-R 601 luma); Fashion-MNIST is always 1.</summary>
    [JsonPropertyName("channels")] public int? Channels { get; init; }

    [JsonPropertyName("random_flip")] public bool RandomFlip { get; init; }

    /// <summary>Fashion-MNIST: keep only these classes (0 t-shirt … 9 ankle boot).</summary>
    [JsonPropertyName("labels")] public int[]? Labels { get; init; }

    /// <summary>Keep only the first this many items (after the label filter): quick runs and tests.</summary>
    [JsonPropertyName("limit")] public int? Limit { get; init; }

    /// <summary>Image folder: read a caption per image (photo.txt beside photo.png, or metadata.jsonl).</summary>
    [JsonPropertyName("captions")] public bool Captions { get; init; }

    [JsonIgnore] public int EffectiveChannels => Type == "fashion-mnist" ? 1 : Channels ?? 3;

    public DataOptions Validate(string source)
    {
        RecipeException Bad(string field, string why) => new($"{source}: 'data.{field}' {why}");
        if (Type is not ("fashion-mnist" or "image-folder")) throw Bad("type", $"must be \"fashion-mnist\" or \"image-folder\" (got \"{Type}\")");
        if (ImageSize <= 0) throw Bad("image_size", $"must be positive (got {ImageSize})");
        if (Limit is <= 0) throw Bad("limit", $"must be positive (got {Limit})");
        if (Type == "fashion-mnist")
        {
            if (Split is not ("train" or "test")) throw Bad("split", $"must be \"train\" or \"test\" (got \"{Split}\")");
            if (ImageSize < FashionMnist.Side || (ImageSize - FashionMnist.Side) % 2 != 0)
                throw Bad("image_size", $"must be 28, 30, 32, … for Fashion-MNIST (images are padded, never scaled; got {ImageSize})");
            if (Channels is { } c && c != 1) throw Bad("channels", $"Fashion-MNIST is grey: 1 channel (got {c})");
            if (Captions) throw Bad("captions", "applies to image folders only");
            if (Labels?.FirstOrDefault(l => l < 0 || l > 9, -1) is { } l && l != -1) throw Bad("labels", $"Fashion-MNIST classes are 0–9 (got {l})");
        }
        else
        {
            if (string.IsNullOrWhiteSpace(Directory)) throw Bad("directory", "is required for an image folder");
            if (Channels is { } c && c is not (1 or 3)) throw Bad("channels", $"must be 1 or 3 (got {c})");
            if (Labels is not null) throw Bad("labels", "applies to Fashion-MNIST only");
        }
        return this;
    }

    /// <summary>Opens the dataset; relative directories are taken from <paramref name="baseDirectory"/> (the recipe's folder).</summary>
    public IDataset Open(string? baseDirectory = null)
    {
        var dir = Directory is null ? null : Path.GetFullPath(Directory, baseDirectory ?? Environment.CurrentDirectory);
        return Type switch
        {
            "fashion-mnist" => new FashionMnistDataset(FashionMnist.Load(Split == "train", dir), ImageSize, RandomFlip, Labels, Limit),
            _ => new ImageFolderDataset(dir!, ImageSize, EffectiveChannels, RandomFlip, Limit, Captions),
        };
    }
}

using System.Text.Json.Serialization;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Recipes;

/// <summary>
/// The "data" section of the Fashion colours recipes (VAE and text-to-image): the data options file
/// (configs/eval/fashion-colours.json: seed, held-out combinations, empty-caption fraction), the
/// Fashion-MNIST folder, flips and an item limit. Training uses the train split without the held-out
/// combinations; evaluation uses the test split.
/// </summary>
public sealed record FashionColoursDataOptions
{
    /// <summary>configs/eval/fashion-colours.json, relative to the recipe; null: the built-in defaults (the same values).</summary>
    [JsonPropertyName("options_file")] public string? OptionsFile { get; init; }

    /// <summary>The Fashion-MNIST IDX folder (default: FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist).</summary>
    [JsonPropertyName("directory")] public string? Directory { get; init; }

    [JsonPropertyName("random_flip")] public bool RandomFlip { get; init; }

    /// <summary>Keep only the first this many training items: quick runs and tests.</summary>
    [JsonPropertyName("limit")] public int? Limit { get; init; }

    public FashionColoursDataOptions Validate(string source)
    {
        if (Limit is <= 0) throw new RecipeException($"{source}: 'data.limit' must be positive (got {Limit})");
        return this;
    }

    /// <summary>The data options, read from <see cref="OptionsFile"/> when given.</summary>
    public FashionColoursOptions Options(string? baseDirectory, string source)
    {
        if (OptionsFile is null) return FashionColoursOptions.Default;
        var path = Path.GetFullPath(OptionsFile, baseDirectory ?? Environment.CurrentDirectory);
        try
        {
            return FashionColoursOptions.Load(path);
        }
        catch (Exception e) when (e is ConfigException or IOException or UnauthorizedAccessException)
        {
            throw new RecipeException($"{source}: 'data.options_file' {path}: {e.Message}", e);
        }
    }

    private string? FullDirectory(string? baseDirectory) =>
        Directory is null ? null : Path.GetFullPath(Directory, baseDirectory ?? Environment.CurrentDirectory);

    /// <summary>The training split (held-out combinations never occur) as a dataset.</summary>
    public FashionColoursDataset OpenTrain(string? baseDirectory, string source, FashionColour? newColour = null, double newColourFraction = 0) =>
        new(FashionColours.Load(train: true, Options(baseDirectory, source), includeHeldOut: false, FullDirectory(baseDirectory)), RandomFlip, Limit, newColour, newColourFraction);

    /// <summary>The test split (all 80 combinations).</summary>
    public FashionColours OpenTest(string? baseDirectory, string source) =>
        FashionColours.Load(train: false, Options(baseDirectory, source), includeHeldOut: true, FullDirectory(baseDirectory));
}

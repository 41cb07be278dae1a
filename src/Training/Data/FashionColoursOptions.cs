using System.Text.Json.Serialization;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.Training.Data;

/// <summary>A (class, colour) combination by name, as recipes list them: {"class": "dress", "colour": "blue"}.</summary>
public sealed record ColourClass(
    [property: JsonPropertyName("class")] string Class,
    [property: JsonPropertyName("colour")] string Colour)
{
    public override string ToString() => $"{Colour} {Class}";
}

/// <summary>
/// How the "Fashion colours" data is made (configs/eval/fashion-colours.json): the seed that assigns
/// colours and captions to items, the combinations held out of training, and the fraction of empty
/// captions (for classifier-free guidance). The defaults are the shipped recipe's.
/// </summary>
public sealed record FashionColoursOptions
{
    /// <summary>Six combinations covering six colours and six classes, none seen in training.</summary>
    public static readonly IReadOnlyList<ColourClass> DefaultHeldOut =
    [
        new("trouser", "red"),
        new("coat", "yellow"),
        new("sneaker", "green"),
        new("ankle boot", "cyan"),
        new("dress", "blue"),
        new("bag", "purple"),
    ];

    [JsonPropertyName("seed")] public ulong Seed { get; init; } = 20261121;

    [JsonPropertyName("held_out")] public IReadOnlyList<ColourClass> HeldOut { get; init; } = DefaultHeldOut;

    [JsonPropertyName("empty_caption_fraction")] public double EmptyCaptionFraction { get; init; } = 0.1;

    public static FashionColoursOptions Default { get; } = new();

    /// <summary>Reads a recipe; an unknown field or impossible value is an error naming it.</summary>
    public static FashionColoursOptions Load(string path)
    {
        var options = ConfigJson.Load<FashionColoursOptions>(path);
        options.Validate(path);
        return options;
    }

    /// <summary>Checks names and ranges; returns the held-out pairs as (class index, colour index).</summary>
    public IReadOnlyList<(int Class, int Colour)> Validate(string source = "fashion colours options")
    {
        if (!(EmptyCaptionFraction >= 0 && EmptyCaptionFraction <= 1))
            throw new ConfigException($"{source}: empty_caption_fraction must be in [0, 1], not {EmptyCaptionFraction}");
        if (HeldOut is null) throw new ConfigException($"{source}: held_out must be a list (may be empty)");
        var pairs = new List<(int, int)>();
        foreach (var h in HeldOut)
        {
            var c = FashionColours.ClassIndex(h.Class);
            var k = FashionColours.ColourIndex(h.Colour);
            if (c < 0) throw new ConfigException($"{source}: held_out class '{h.Class}' is not one of {string.Join(", ", FashionColours.ClassNames)}");
            if (k < 0) throw new ConfigException($"{source}: held_out colour '{h.Colour}' is not one of {string.Join(", ", FashionColours.Colours.Select(x => x.Name))}");
            if (pairs.Contains((c, k))) throw new ConfigException($"{source}: held_out lists {h} twice");
            pairs.Add((c, k));
        }
        for (int c = 0; c < FashionColours.ClassNames.Count; c++)
            if (pairs.Count(p => p.Item1 == c) >= FashionColours.Colours.Count)
                throw new ConfigException($"{source}: held_out removes every colour of class '{FashionColours.ClassNames[c]}'");
        return pairs;
    }
}

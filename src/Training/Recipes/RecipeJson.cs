using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LatentDiffusion.Training.Recipes;

/// <summary>
/// Reads training recipes (configs/train/*.json) into records, strictly: a field the record does
/// not declare, at any depth, is an error that names it with its path ("training.bach_size"), so a
/// typo never silently falls back to a default. Names are snake_case as in diffusers' scripts.
/// </summary>
public static class RecipeJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
    };

    public static T Load<T>(string path)
    {
        string text;
        try { text = Torch.BoundedFile.ReadAllText(path, Torch.BoundedFile.ConfigLimit, "recipe"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RecipeException($"{path}: cannot be read ({e.Message})", e);
        }
        return Parse<T>(text, path);
    }

    public static T Parse<T>(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json, Options) ?? throw new RecipeException($"{source}: the recipe is empty (null)");
        }
        catch (JsonException e)
        {
            var field = e.Path is { Length: > 1 } p ? p.TrimStart('$', '.') : null;
            // System.Text.Json reports an unmapped member with the path of the member itself.
            if (e.Message.Contains("could not be mapped", StringComparison.Ordinal))
                throw new RecipeException($"{source}: unknown field '{field}'", e);
            var where = field is null ? "" : $"field '{field}': ";
            throw new RecipeException($"{source}: {where}{FirstSentence(e.Message)}", e);
        }
    }

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    /// <summary>An embedded JSON object (e.g. a model config inside a recipe) as text, for a second, typed parse.</summary>
    public static string Text(JsonObject node) => node.ToJsonString(Options);

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(". ", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }
}

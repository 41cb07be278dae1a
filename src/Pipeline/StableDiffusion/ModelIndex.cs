using System.Text.Json.Nodes;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>
/// A diffusers pipeline folder's model_index.json: which class each component folder holds.
/// Components whose entry is [null, null] (safety checker, feature extractor) are absent.
/// </summary>
/// <param name="Flags">The pipeline's boolean settings (SDXL: force_zeros_for_empty_prompt, requires_aesthetics_score).</param>
public sealed record ModelIndex(string ClassName, IReadOnlyDictionary<string, (string Library, string ClassName)> Components,
    IReadOnlyDictionary<string, bool>? Flags = null)
{
    /// <summary>The boolean setting <paramref name="name"/>, or <paramref name="fallback"/> when the index has none.</summary>
    public bool Flag(string name, bool fallback) => Flags is not null && Flags.TryGetValue(name, out var value) ? value : fallback;

    public static ModelIndex Load(string directory)
    {
        var path = Path.Combine(directory, "model_index.json");
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"{directory}: model folder not found");
        if (!File.Exists(path)) throw new FileNotFoundException($"{directory}: no model_index.json (not a diffusers pipeline folder)");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(Torch.BoundedFile.ReadAllText(path, Torch.BoundedFile.ConfigLimit, "model index")) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
        var components = new Dictionary<string, (string, string)>();
        var flags = new Dictionary<string, bool>();
        foreach (var (key, value) in root)
        {
            if (value is JsonValue flag && flag.TryGetValue<bool>(out var on)) flags[key] = on;
            if (key.StartsWith('_') || value is not JsonArray { Count: 2 } pair) continue;
            if (pair[0] is null || pair[1] is null) continue;
            components[key] = (Text(pair[0], path, key), Text(pair[1], path, key));
        }
        var className = root["_class_name"] is { } name ? Text(name, path, "_class_name") : throw new InvalidDataException($"{path}: missing _class_name");
        return new ModelIndex(className, components, flags);
    }

    // A string entry; anything else (a number, an array, an object) is an error naming the file and the field,
    // not System.Text.Json's InvalidOperationException that names neither.
    private static string Text(JsonNode? node, string path, string field) =>
        node is JsonValue value && value.TryGetValue<string>(out var text)
            ? text
            : throw new InvalidDataException($"{path}: '{field}' must be a string or a [library, class] pair of strings, got {node?.ToJsonString() ?? "null"}");

    /// <summary>The folder of component <paramref name="name"/>, checking that the index names the expected class.</summary>
    public string Require(string directory, string name, params string[] classNames)
    {
        if (!Components.TryGetValue(name, out var entry))
            throw new InvalidDataException($"{directory}: model_index.json has no '{name}' component");
        if (classNames.Length > 0 && !classNames.Contains(entry.ClassName))
            throw new InvalidDataException($"{directory}: component '{name}' is a {entry.ClassName}; supported: {string.Join(", ", classNames)}");
        var folder = Path.Combine(directory, name);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{directory}: component folder '{name}/' is missing");
        return folder;
    }

    /// <param name="absent">Components written as [null, null] (an SDXL refiner's text_encoder and tokenizer).</param>
    /// <param name="flags">Boolean pipeline settings (SDXL's force_zeros_for_empty_prompt, requires_aesthetics_score).</param>
    public static void Save(string directory, string className, IEnumerable<(string Name, string Library, string ClassName)> components,
        IEnumerable<string>? absent = null, IEnumerable<(string Name, bool Value)>? flags = null)
    {
        var root = new JsonObject { ["_class_name"] = className, ["_diffusers_version"] = "0.30.3" };
        foreach (var (name, value) in flags ?? []) root[name] = value;
        foreach (var (name, library, cls) in components) root[name] = new JsonArray(library, cls);
        foreach (var name in absent ?? []) root[name] = new JsonArray(null, null);
        Torch.AtomicFile.WriteAllText(Path.Combine(directory, "model_index.json"), root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}

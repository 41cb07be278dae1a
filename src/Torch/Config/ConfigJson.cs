using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LatentDiffusion.Torch.Config;

/// <summary>A config file is unreadable, has an unknown field, or a value of the wrong type; the message names the file and field.</summary>
public sealed class ConfigException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reads and writes diffusers/transformers-style config.json files into C# records whose
/// properties carry the config names (<c>[JsonPropertyName("block_out_channels")]</c>). Keys that
/// start with "_" (<c>_class_name</c>, <c>_diffusers_version</c>) are metadata and ignored; any other
/// key the record does not declare is an error naming it, unless listed in <paramref name="ignored"/>.
/// Missing keys keep the record's defaults, which are the reference implementation's defaults.
/// </summary>
public static class ConfigJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        // A JSON null for a property the record declares non-nullable (block_out_channels: null) is an error
        // naming the field, not a null that a model constructor would dereference later.
        RespectNullableAnnotations = true,
    };

    public static T Load<T>(string path, IEnumerable<string>? ignored = null)
    {
        return Parse<T>(ReadText(path), path, ignored);
    }

    public static T Parse<T>(string json, string source, IEnumerable<string>? ignored = null)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw new ConfigException($"{source}: is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}: not valid JSON ({e.Message})", e);
        }
        var known = JsonNames(typeof(T));
        var skip = new HashSet<string>(ignored ?? []);
        foreach (var key in root.Select(p => p.Key).ToList())
        {
            if (key.StartsWith('_') || skip.Contains(key)) { root.Remove(key); continue; }
            if (!known.Contains(key))
                throw new ConfigException($"{source}: unknown field '{key}' for {typeof(T).Name}");
        }
        try
        {
            return root.Deserialize<T>(Options) ?? throw new ConfigException($"{source}: empty config");
        }
        catch (JsonException e)
        {
            var field = e.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : "?";
            if (root.TryGetPropertyValue(field, out var value) && value is null)
                throw new ConfigException($"{source}: field '{field}' must not be null", e);
            throw new ConfigException($"{source}: field '{field}' has a value of the wrong type ({FirstSentence(e.Message)})", e);
        }
    }

    /// <summary>Class name recorded in a diffusers config (<c>_class_name</c>), or null.</summary>
    public static string? ClassName(string path)
    {
        return ClassNameOf(ReadText(path), path);
    }

    /// <summary>Class name recorded in the JSON text of a diffusers config (<c>_class_name</c>), or null; <paramref name="source"/> names it in errors.</summary>
    public static string? ClassNameOf(string json, string source)
    {
        try
        {
            return (JsonNode.Parse(json) as JsonObject)?["_class_name"]?.GetValue<string>();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new ConfigException($"{source}: cannot be read as a JSON config ({e.Message})", e);
        }
    }

    /// <summary>The text of a JSON config file, at most <see cref="BoundedFile.ConfigLimit"/> bytes; errors name the file.</summary>
    public static string ReadText(string path)
    {
        try { return BoundedFile.ReadAllText(path, BoundedFile.ConfigLimit, "JSON config"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot be read ({e.Message})", e);
        }
    }

    /// <summary>Writes <paramref name="config"/> with diffusers' metadata keys first, atomically.</summary>
    public static void Save<T>(string path, T config, string className, string? version = "0.30.3")
    {
        var node = JsonSerializer.SerializeToNode(config, Options) as JsonObject ?? new JsonObject();
        var ordered = new JsonObject { ["_class_name"] = className };
        if (version is not null) ordered["_diffusers_version"] = version;
        foreach (var (key, value) in node.ToList())
        {
            node.Remove(key);
            ordered[key] = value;
        }
        AtomicFile.WriteAllText(path, ordered.ToJsonString(Options) + "\n");
    }

    private static HashSet<string> JsonNames(Type type)
    {
        var names = new HashSet<string>();
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetCustomAttribute<JsonIgnoreAttribute>() is not null) continue;
            names.Add(property.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? property.Name);
        }
        return names;
    }

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(". ", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }
}

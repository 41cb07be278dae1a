using System.Text;
using System.Text.Json.Nodes;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>
/// Mutations of a JSON file: one field's value replaced (null, 0, -1, huge, 1e308, strings, arrays, objects),
/// a field deleted, a key duplicated, or the text made invalid (cut, a brace lost, non-UTF-8 bytes).
/// The mutated field's name travels with the result, so that the error can be checked to name it.
/// </summary>
public static class JsonMutator
{
    /// <summary>Replacement values, as JSON text.</summary>
    public static IReadOnlyList<string> Values { get; } =
    [
        "null", "0", "-1", "1", "2147483648", "-2147483649", "9223372036854775807", "18446744073709551616", "1e308", "-1e308", "1e-320",
        "0.5", "-0.0", "true", "\"\"", "\"x\"", "\"NaN\"", "\"\\u00e9\\u6f22\"", "[]", "[0]", "[-1, 2]", "[1e308]", "[null]", "[[1]]", "{}", "{\"a\": 1}",
    ];

    public static Mutated Mutate(byte[] data, FuzzRandom random, IReadOnlyList<string>? preferredFields = null)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(data);
        }
        catch (System.Text.Json.JsonException)
        {
            return BinaryMutator.Mutate(data, random);
        }
        var fields = Fields(root).ToList();
        if (preferredFields is { Count: > 0 } && random.Chance(0.6))
        {
            var preferred = fields.Where(f => preferredFields.Contains(f.Key)).ToList();
            if (preferred.Count > 0) fields = preferred;
        }
        var choice = random.Next(10);
        if (fields.Count == 0 || choice >= 8) return Syntax(data, random);
        var (parent, key, path) = random.Pick(fields);
        var field = key ?? Parent(path);
        switch (choice)
        {
            case 6 when parent is JsonObject o && key is not null:
                o.Remove(key);
                return new(Serialize(root), $"{path} deleted", field);
            case 7 when parent is JsonObject && key is not null:
            {
                // A duplicate key cannot exist in a JsonNode tree: insert it into the text after the first '{'.
                var text = Serialize(root);
                var brace = Array.IndexOf(text, (byte)'{');
                var value = random.Pick(Values);
                byte[] insert = Encoding.UTF8.GetBytes($"\"{key}\": {value}, ");
                return new([.. text[..(brace + 1)], .. insert, .. text[(brace + 1)..]], $"duplicate key {key} = {value} inserted", key);
            }
            default:
            {
                var value = random.Pick(Values);
                var node = JsonNode.Parse(value);
                if (parent is JsonObject o && key is not null) o[key] = node;
                else if (parent is JsonArray a) a[int.Parse(path[(path.LastIndexOf('[') + 1)..^1], System.Globalization.CultureInfo.InvariantCulture)] = node;
                else return new(Encoding.UTF8.GetBytes(value), $"whole document replaced by {value}");
                return new(Serialize(root), $"{path} = {value}", field);
            }
        }
    }

    private static Mutated Syntax(byte[] data, FuzzRandom random)
    {
        switch (random.Next(4))
        {
            case 0:
            {
                var length = random.Next(data.Length);
                return new(data[..length], $"JSON cut to {length} of {data.Length} bytes");
            }
            case 1:
            {
                var last = Array.LastIndexOf(data, (byte)'}');
                return last < 0 ? new([], "emptied") : new([.. data[..last], .. data[(last + 1)..]], "last '}' removed");
            }
            case 2:
            {
                var quote = Array.IndexOf(data, (byte)'"');
                var at = quote < 0 ? 0 : quote + 1;
                return new([.. data[..at], 0xFF, 0xC0, 0x80, .. data[at..]], $"non-UTF-8 bytes inserted at {at}");
            }
            default:
                return new([.. data, .. "{\"trailing\": 1}"u8], "trailing text after the document");
        }
    }

    /// <summary>Every field and array element: its container, its key (null for an element) and its path.</summary>
    private static IEnumerable<(JsonNode Parent, string? Key, string Path)> Fields(JsonNode? node, string path = "")
    {
        if (node is JsonObject o)
        {
            foreach (var (key, value) in o.ToList())
            {
                var child = path.Length == 0 ? key : $"{path}.{key}";
                yield return (o, key, child);
                foreach (var inner in Fields(value, child)) yield return inner;
            }
        }
        else if (node is JsonArray a)
        {
            for (var i = 0; i < a.Count; i++)
            {
                var child = $"{path}[{i}]";
                yield return (a, null, child);
                foreach (var inner in Fields(a[i], child)) yield return inner;
            }
        }
    }

    // The field an array element belongs to: "down_block_types" for "down_block_types[2]".
    private static string Parent(string path)
    {
        var bracket = path.IndexOf('[');
        var name = bracket < 0 ? path : path[..bracket];
        return name[(name.LastIndexOf('.') + 1)..];
    }

    private static byte[] Serialize(JsonNode? root) => Encoding.UTF8.GetBytes(root?.ToJsonString() ?? "null");
}

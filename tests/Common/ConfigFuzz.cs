using System.Text.Json.Nodes;
using LatentDiffusion.Torch.Config;
using Xunit;

namespace LatentDiffusion.Tests.Common;

/// <summary>
/// A bounded fuzz of one config kind: every field of a valid config.json (and every entry of a list field) is set in
/// turn to null, 0, −1, 1e30 and "NaN". Each mutant must either build or fail with a <see cref="ConfigException"/>
/// naming the file and the mutated field; anything else (a NullReferenceException, a division by zero, libtorch's
/// own message) is a failure. All failures are reported together.
/// </summary>
public static class ConfigFuzz
{
    private static readonly Func<JsonNode?>[] Values = [() => null, () => 0, () => -1, () => 1e30, () => "NaN"];

    /// <summary>Every mutant of <paramref name="baseJson"/>: the field (as the error should name it) and the JSON.</summary>
    public static IEnumerable<(string Field, string Value, string Json)> Mutants(string baseJson)
    {
        var root = JsonNode.Parse(baseJson)!.AsObject();
        foreach (var (key, original) in root.ToList())
        {
            if (key.StartsWith('_')) continue;
            foreach (var value in Values)
            {
                var copy = root.DeepClone().AsObject();
                copy[key] = value();
                yield return (key, Show(copy[key]), copy.ToJsonString());
            }
            if (original is not JsonArray list) continue;
            for (int i = 0; i < list.Count; i++)
                foreach (var value in Values)
                {
                    var copy = root.DeepClone().AsObject();
                    copy[key]![i] = value();
                    yield return (key, $"[{i}] = {Show(copy[key]![i])}", copy.ToJsonString());
                }
        }
    }

    /// <summary>Parses and builds every mutant; <paramref name="build"/> constructs (and disposes) the model.</summary>
    /// <returns>The number of mutants tried.</returns>
    public static int Run<T>(string baseJson, string source, Func<string, string, T> parse, Action<T> build)
    {
        var failures = new List<string>();
        int count = 0;
        foreach (var (field, value, json) in Mutants(baseJson))
        {
            count++;
            try
            {
                build(parse(json, source));
            }
            catch (ConfigException e)
            {
                // The field itself, or one of its entries ('block_out_channels[1]').
                if (!e.Message.Contains(source, StringComparison.Ordinal) || !e.Message.Contains($"field '{field}", StringComparison.Ordinal))
                    failures.Add($"{field} {value}: the error does not name {source} and field '{field}': {e.Message}");
            }
            catch (Exception e)
            {
                failures.Add($"{field} {value}: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {count} mutants failed badly:\n" + string.Join("\n", failures));
        return count;
    }

    private static string Show(JsonNode? node) => node?.ToJsonString() ?? "null";
}

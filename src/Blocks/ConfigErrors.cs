using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.Blocks;

/// <summary>Errors for config values this implementation does not support; each names the field.</summary>
public static class ConfigErrors
{
    public static ConfigException Unsupported(string field, object? value, string supported) =>
        new($"field '{field}' = {Show(value)} is not supported (supported: {supported})");

    public static ConfigException Invalid(string field, string problem) => new($"field '{field}': {problem}");

    private static string Show(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        bool b => b ? "true" : "false",
        _ => value.ToString() ?? "?",
    };
}

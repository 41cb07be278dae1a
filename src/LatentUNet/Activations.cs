using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>diffusers' get_activation: the activation a config names ("silu", "swish", "gelu", "relu").</summary>
public static class Activations
{
    public static Module<Tensor, Tensor> Create(string name, string field = "act_fn") => name switch
    {
        "silu" or "swish" => new SiLU(),
        "gelu" => new GELU(),
        "relu" => new ReLU(),
        _ => throw ConfigErrors.Unsupported(field, name, "silu, swish, gelu or relu"),
    };
}

/// <summary>Errors for config values this implementation does not support; each names the field.</summary>
public static class ConfigErrors
{
    public static ConfigException Unsupported(string field, object? value, string supported) =>
        new($"config field '{field}' = {Show(value)} is not supported (supported: {supported})");

    public static ConfigException Invalid(string field, string problem) => new($"config field '{field}': {problem}");

    private static string Show(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        bool b => b ? "true" : "false",
        _ => value.ToString() ?? "?",
    };
}

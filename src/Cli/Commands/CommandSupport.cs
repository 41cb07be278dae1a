using System.CommandLine;

namespace LatentDiffusion.Cli.Commands;

/// <summary>Shared pieces of the train, toy, sample, eval and bench-model commands.</summary>
internal static class CommandSupport
{
    /// <summary>Rejects a path that is not an existing file, with a parse error naming the option.</summary>
    public static Option<string> ExistingFile(this Option<string> option)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && !File.Exists(result.Tokens[0].Value))
                result.AddError($"{option.Name}: {result.Tokens[0].Value}: file not found");
        });
        return option;
    }

    /// <summary>Rejects a path that is not an existing folder, with a parse error naming the option.</summary>
    public static Option<string> ExistingDirectory(this Option<string> option)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && !Directory.Exists(result.Tokens[0].Value))
                result.AddError($"{option.Name}: {result.Tokens[0].Value}: folder not found");
        });
        return option;
    }

    /// <summary>Rejects values outside <paramref name="allowed"/> (case-insensitive), listing them.</summary>
    public static Option<string> OneOf(this Option<string> option, params string[] allowed)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && !allowed.Contains(result.Tokens[0].Value, StringComparer.OrdinalIgnoreCase))
                result.AddError($"{option.Name} must be one of {string.Join(", ", allowed)}, got '{result.Tokens[0].Value}'");
        });
        return option;
    }

    public static string F(double value, int decimals) => value.ToString("F" + decimals, System.Globalization.CultureInfo.InvariantCulture);
}

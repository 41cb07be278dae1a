using System.CommandLine;
using System.Globalization;

namespace LatentDiffusion.Cli;

/// <summary>Validation helpers shared by the commands' options.</summary>
internal static class Options
{
    /// <summary>Rejects values below <paramref name="minimum"/> with a parse error that names the option.
    /// (A value that is not a number at all is reported by the parser itself.)</summary>
    public static Option<int> AtLeast(this Option<int> option, int minimum)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1
                && int.TryParse(result.Tokens[0].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
                && value < minimum)
            {
                result.AddError($"{option.Name} must be at least {minimum}, got {value}");
            }
        });
        return option;
    }
}

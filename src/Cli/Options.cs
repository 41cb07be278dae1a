using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace LatentDiffusion.Cli;

/// <summary>Validation helpers shared by the commands' options.</summary>
internal static class Options
{
    /// <summary>Rejects values below <paramref name="minimum"/> with a parse error that names the option.
    /// (A value that is not a number at all is reported by the parser itself.)</summary>
    public static Option<int> AtLeast(this Option<int> option, int minimum)
    {
        AddMinimum(option, minimum);
        return option;
    }

    /// <summary>The same for an optional value (absent: no check).</summary>
    public static Option<int?> AtLeast(this Option<int?> option, int minimum)
    {
        AddMinimum(option, minimum);
        return option;
    }

    /// <summary>
    /// A file or folder path: refuses an empty or blank value and characters no path may hold (NUL), naming the
    /// option, before a command reads or writes anything (the framework's own message names neither).
    /// </summary>
    public static T IsPath<T>(this T option) where T : Option
    {
        option.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
            {
                if (string.IsNullOrWhiteSpace(token.Value)) result.AddError($"{option.Name} needs a path, got '{token.Value}'");
                else if (token.Value.Contains('\0')) result.AddError($"{option.Name}: the path contains a NUL character");
            }
        });
        return option;
    }

    private static void AddMinimum(Option option, int minimum)
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
    }

    /// <summary>
    /// Accepts only finite values in <paramref name="range"/>: NaN and ±∞ parse as doubles, and a value far out of range
    /// (--guidance 1e30) runs to an all-black image with exit 0, so every floating-point option declares its range here.
    /// The range is appended to the help text, and a parse error names the option, the range and the value.
    /// </summary>
    public static Option<double> InRange(this Option<double> option, NumberRange range) => AddRange(option, range);

    /// <inheritdoc cref="InRange(Option{double}, NumberRange)"/>
    public static Option<double?> InRange(this Option<double?> option, NumberRange range) => AddRange(option, range);

    private static TOption AddRange<TOption>(TOption option, NumberRange range) where TOption : Option
    {
        option.Description = $"{option.Description}; range {range}";
        option.Validators.Add(result =>
        {
            // double.Parse accepts "NaN", "Infinity" and "∞", and overflows to ±∞ ("1e400"); what it cannot read, the parser reports.
            if (result.Tokens.Count == 1
                && double.TryParse(result.Tokens[0].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
                && !range.Contains(value))
            {
                result.AddError(range.Describe(result.IdentifierToken?.Value ?? option.Name, result.Tokens[0].Value)); // as typed: --cfg or --guidance
            }
        });
        return option;
    }
}

/// <summary>
/// An interval of finite numbers, [Min, Max] with either end open. <see cref="Contains"/> is false for NaN and ±∞,
/// so a check written with it cannot let a NaN through as a comparison such as <c>x &lt; 0</c> does.
/// </summary>
internal readonly record struct NumberRange(double Min, double Max, bool MinInclusive = true, bool MaxInclusive = true)
{
    /// <summary>[min, max].</summary>
    public static NumberRange Closed(double min, double max) => new(min, max);

    /// <summary>(min, max]: e.g. img2img's strength, where 0 would change nothing.</summary>
    public static NumberRange OpenClosed(double min, double max) => new(min, max, MinInclusive: false);

    public bool Contains(double value) =>
        double.IsFinite(value)
        && (MinInclusive ? value >= Min : value > Min)
        && (MaxInclusive ? value <= Max : value < Max);

    /// <summary>"--guidance must be a finite number in [0, 100], got nan".</summary>
    public string Describe(string name, string value) => $"{name} must be a finite number in {this}, got {value}";

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{(MinInclusive ? '[' : '(')}{Min}, {Max}{(MaxInclusive ? ']' : ')')}");
}

/// <summary>The ranges of the floating-point options, one place for every command that takes them.</summary>
internal static class Ranges
{
    /// <summary>CFG scale: AUTOMATIC1111 stops at 30; 100 leaves headroom while 1e30 (an all-black image) is refused.</summary>
    public static readonly NumberRange Guidance = NumberRange.Closed(0, 100);

    /// <summary>φ of Lin et al. 2023 §3.4: a blend between the guided and the rescaled prediction.</summary>
    public static readonly NumberRange GuidanceRescale = NumberRange.Closed(0, 1);

    /// <summary>DDIM's η: above 1 its σ exceeds the step's variance and the update takes the root of a negative number.</summary>
    public static readonly NumberRange Eta = NumberRange.Closed(0, 1);

    /// <summary>img2img's strength: 0 would run no step at all.</summary>
    public static readonly NumberRange Strength = NumberRange.OpenClosed(0, 1);
}

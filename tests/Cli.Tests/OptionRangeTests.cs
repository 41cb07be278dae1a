using System.CommandLine;

namespace LatentDiffusion.Cli.Tests;

/// <summary>Every floating-point option has a documented range and refuses NaN, ±∞ and values outside it (Options.InRange).</summary>
public class OptionRangeTests
{
    private static RootCommand Root() =>
        CliApp.BuildRootCommand(new CliContext(TextWriter.Null, TextWriter.Null), new Option<bool>("--verbose"));

    private static readonly Type[] FloatingPoint = [typeof(double), typeof(float), typeof(double?), typeof(float?)];

    /// <summary>(command path, option) for every floating-point option in the command tree.</summary>
    private static List<(string[] Path, Option Option)> FloatingPointOptions()
    {
        var found = new List<(string[], Option)>();
        void Walk(Command command, string[] path)
        {
            foreach (var option in command.Options.Where(o => FloatingPoint.Contains(o.ValueType))) found.Add((path, option));
            foreach (var sub in command.Subcommands) Walk(sub, [.. path, sub.Name]);
        }
        Walk(Root(), []);
        return found;
    }

    [Fact]
    public void EveryFloatingPointOptionDocumentsItsRangeAndRefusesNanAndInfinity()
    {
        var options = FloatingPointOptions();
        // generate and img2img: --guidance, --guidance-rescale, --eta (and img2img's --strength); eval prompts: --guidance.
        Assert.True(options.Count >= 8, $"found only {options.Count} floating-point options");
        foreach (var (path, option) in options)
        {
            var where = $"ldm {string.Join(' ', path)} {option.Name}";
            Assert.Matches(@"; range [\[(]-?[\d.]+, [\d.]+[\])]$", option.Description ?? "");
            foreach (var value in new[] { "nan", "NaN", "Infinity", "-Infinity", "1e400" })
            {
                var line = CliRunner.Run([.. path, option.Name, value]).AssertUsageError($"{option.Name} must be a finite number in ");
                Assert.True(line.Contains($", got {value}", StringComparison.Ordinal), $"{where} {value}: {line}");
            }
        }
    }

    [Theory]
    [InlineData("generate x --guidance 1e30", "--guidance must be a finite number in [0, 100], got 1e30")]
    [InlineData("generate x --cfg -1", "--cfg must be a finite number in [0, 100], got -1")]
    [InlineData("generate x --eta 100", "--eta must be a finite number in [0, 1], got 100")]
    [InlineData("generate x --guidance-rescale 1.5", "--guidance-rescale must be a finite number in [0, 1], got 1.5")]
    [InlineData("img2img x --init a.png --strength 0", "--strength must be a finite number in (0, 1], got 0")]
    [InlineData("eval prompts --model m --guidance 101", "--guidance must be a finite number in [0, 100], got 101")]
    public void ValuesOutsideTheRangeAreParseErrorsNamingOptionRangeAndValue(string args, string expected)
    {
        var line = CliRunner.Run(args.Split(' ')).AssertUsageError(expected);
        Assert.StartsWith($"error: {expected}; see 'ldm ", line);
    }

    [Theory]
    [InlineData("generate x --guidance 100 --guidance-rescale 1 --eta 1")]
    [InlineData("generate x --guidance 0 --guidance-rescale 0 --eta 0")]
    [InlineData("img2img x --init a.png --strength 1 --guidance 30")]
    [InlineData("img2img x --init a.png --strength 0.01")]
    [InlineData("eval prompts --model m --guidance 7.5")]
    public void TheEndsOfEachRangeParse(string args) =>
        Assert.Empty(Root().Parse(args.Split(' ')).Errors);

    [Fact]
    public void ARangeHoldsNoNonFiniteValueAndHonoursOpenEnds()
    {
        var closed = NumberRange.Closed(0, 1);
        Assert.True(closed.Contains(0) && closed.Contains(1) && closed.Contains(0.5));
        Assert.False(closed.Contains(double.NaN) || closed.Contains(double.PositiveInfinity) || closed.Contains(double.NegativeInfinity));
        Assert.False(closed.Contains(-1e-12) || closed.Contains(1 + 1e-12));
        var openClosed = NumberRange.OpenClosed(0, 1);
        Assert.False(openClosed.Contains(0));
        Assert.True(openClosed.Contains(1));
        Assert.Equal("(0, 1]", openClosed.ToString());
        Assert.Equal("[0, 100]", NumberRange.Closed(0, 100).ToString());
        Assert.False(new NumberRange(double.NegativeInfinity, double.PositiveInfinity).Contains(double.PositiveInfinity));
    }
}

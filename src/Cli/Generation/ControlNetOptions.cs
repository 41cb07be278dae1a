using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Preprocessors;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Cli.Generation;

/// <summary>
/// The ControlNet options of <c>ldm generate</c> and <c>ldm img2img</c>: <c>--controlnet DIR|FILE --control KIND:IMAGE[:SCALE]</c>,
/// the pair repeated for several ControlNets (the first --control goes with the first --controlnet, …), with
/// --control-start/--control-end/--control-resize (one value for all, or one per ControlNet) and --guess-mode.
/// </summary>
internal sealed class ControlNetOptions
{
    public readonly Option<string[]> ControlNet = new Option<string[]>("--controlnet")
    {
        Description = "A ControlNet: a diffusers folder or a single-file .safetensors (control_v11p_sd15_*); repeat for several",
    }.IsPath();
    public readonly Option<string[]> Control = new("--control")
    {
        Description = "Its control image: canny:PHOTO[:SCALE] (edges found here) or image:MAP[:SCALE] (a ready map: edges, depth, pose); one per --controlnet",
    };
    public readonly Option<double[]> Start = new("--control-start") { Description = "Fraction of the steps after which the ControlNet starts (default 0; once for all, or repeated once per ControlNet)" };
    public readonly Option<double[]> End = new("--control-end") { Description = "Fraction of the steps after which it stops (default 1; once for all, or repeated once per ControlNet)" };
    public readonly Option<string[]> Resize = new Option<string[]>("--control-resize")
    {
        Description = "How the control image fits the output size (A1111's Resize Mode): crop (\"Crop and Resize\": the centre cut to the output's "
            + "aspect ratio, the default as in A1111), just (\"Just Resize\": stretched, diffusers), fill (\"Resize and Fill\": fitted inside, "
            + "the rest filled with the map's median border colour); once for all, or repeated once per ControlNet",
    }.AcceptOnlyFromAmong([.. ResizeModes.Keys]);
    public readonly Option<bool> GuessMode = new("--guess-mode") { Description = "The ControlNets steer without the prompt's help (diffusers' guess_mode; A1111's \"ControlNet is more important\")" };
    // thresholds on |dx| + |dy| of 8-bit Sobel derivatives, at most 8 · 255 = 2040
    private static readonly NumberRange Threshold = NumberRange.Closed(0, 2040);
    public readonly Option<double> CannyLow = new Option<double>("--canny-low") { Description = "canny: lower threshold (A1111's Threshold A)", DefaultValueFactory = _ => CannyDetector.DefaultLow }.InRange(Threshold);
    public readonly Option<double> CannyHigh = new Option<double>("--canny-high") { Description = "canny: upper threshold (A1111's Threshold B)", DefaultValueFactory = _ => CannyDetector.DefaultHigh }.InRange(Threshold);

    public IEnumerable<Option> All => [ControlNet, Control, Start, End, Resize, GuessMode, CannyLow, CannyHigh];

    /// <summary>The --control-resize values; the default is the ControlNet extension's, Crop and Resize.</summary>
    private static readonly Dictionary<string, ControlResizeMode> ResizeModes = new()
    {
        ["crop"] = ControlResizeMode.CropAndResize,
        ["just"] = ControlResizeMode.JustResize,
        ["fill"] = ControlResizeMode.ResizeAndFill,
    };

    /// <summary>One --control value, its image read (an unreadable image fails before any model loads).</summary>
    private sealed record Spec(string Kind, RgbImage Image, double Scale);

    /// <summary>Reads the control images and checks the option counts; call before loading the model.</summary>
    public IReadOnlyList<(string Path, RgbImage Image, double Scale, IControlPreprocessor? Preprocessor)> Read(ParseResult parsed)
    {
        var paths = parsed.GetValue(ControlNet) ?? [];
        var controls = parsed.GetValue(Control) ?? [];
        if (paths.Length != controls.Length)
            throw new UsageException($"{ControlNet.Name} is given {paths.Length} time(s) and {Control.Name} {controls.Length}: give one {Control.Name} per {ControlNet.Name}");
        if (paths.Length == 0 && (parsed.GetValue(GuessMode) || parsed.GetResult(Start) is not null || parsed.GetResult(End) is not null
            || parsed.GetResult(Resize) is not null))
            throw new UsageException($"{GuessMode.Name}, {Start.Name}, {End.Name} and {Resize.Name} need a {ControlNet.Name}");
        _ = PerUnit(parsed, Start, paths.Length, 0.0); // counts and ranges are checked before the model loads
        _ = PerUnit(parsed, End, paths.Length, 1.0);
        _ = ResizePerUnit(parsed, paths.Length);
        var low = parsed.GetValue(CannyLow);
        var high = parsed.GetValue(CannyHigh);
        return controls.Select((c, i) =>
        {
            var spec = Parse(c);
            return (paths[i], spec.Image, spec.Scale,
                spec.Kind == "canny" ? new CannyPreprocessor(low, high) : (IControlPreprocessor?)null);
        }).ToList();
    }

    /// <summary>KIND:PATH[:SCALE]; the scale is the text after the last ':' when it is a number (a path may hold ':').</summary>
    private Spec Parse(string value)
    {
        var colon = value.IndexOf(':');
        var kind = colon < 0 ? "" : value[..colon];
        if (kind is not ("canny" or "image"))
            throw new UsageException($"{Control.Name} '{value}': expected canny:PHOTO[:SCALE] or image:MAP[:SCALE] (depth, pose and other maps are made by tools of their own and given as image:)");
        var rest = value[(colon + 1)..];
        double scale = 1.0;
        var last = rest.LastIndexOf(':');
        if (last >= 0 && double.TryParse(rest[(last + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var s))
        {
            if (!(s >= 0 && s <= 10)) throw new UsageException($"{Control.Name} '{value}': the scale must be in [0, 10]");
            scale = s;
            rest = rest[..last];
        }
        if (rest.Length == 0) throw new UsageException($"{Control.Name} '{value}': no image path");
        return new Spec(kind, RgbImage.Load(rest), scale);
    }

    /// <summary>The request's ControlNet units, the ControlNets loaded for <paramref name="pipe"/> (added to <paramref name="loaded"/> for disposal).</summary>
    public IReadOnlyList<ControlNetUnit> Units(ParseResult parsed, StableDiffusionPipeline pipe,
        IReadOnlyList<(string Path, RgbImage Image, double Scale, IControlPreprocessor? Preprocessor)> read, List<IControlNet> loaded)
    {
        var starts = PerUnit(parsed, Start, read.Count, 0.0);
        var ends = PerUnit(parsed, End, read.Count, 1.0);
        var resizes = ResizePerUnit(parsed, read.Count);
        var units = new List<ControlNetUnit>();
        var byPath = new Dictionary<string, IControlNet>();
        for (int i = 0; i < read.Count; i++)
        {
            var full = Path.GetFullPath(read[i].Path);
            if (!byPath.TryGetValue(full, out var model))
            {
                model = pipe.LoadControlNet(read[i].Path);
                loaded.Add(model);
                byPath[full] = model;
            }
            units.Add(new ControlNetUnit(model, read[i].Image)
            {
                Scale = read[i].Scale,
                GuidanceStart = starts[i],
                GuidanceEnd = ends[i],
                ResizeMode = resizes[i],
                Preprocessor = read[i].Preprocessor,
            });
        }
        return units;
    }

    private static double[] PerUnit(ParseResult parsed, Option<double[]> option, int count, double fallback)
    {
        var values = parsed.GetValue(option) ?? [];
        foreach (var v in values)
            if (!(v >= 0 && v <= 1)) throw new UsageException($"{option.Name} must be a fraction of the steps in [0, 1], got {v.ToString(CultureInfo.InvariantCulture)}");
        return Spread(option, values, count, fallback);
    }

    private ControlResizeMode[] ResizePerUnit(ParseResult parsed, int count) =>
        Spread(Resize, [.. (parsed.GetValue(Resize) ?? []).Select(v => ResizeModes[v])], count, ControlResizeMode.CropAndResize);

    /// <summary>No value: the fallback for every unit; one: it for every unit; else one per unit.</summary>
    private static T[] Spread<T>(Option option, T[] values, int count, T fallback)
    {
        if (values.Length == 0) return Enumerable.Repeat(fallback, count).ToArray();
        if (values.Length == 1) return Enumerable.Repeat(values[0], count).ToArray();
        if (values.Length == count) return values;
        throw new UsageException($"{option.Name} is given {values.Length} times for {count} ControlNets: give one value for all, or one per ControlNet");
    }
}

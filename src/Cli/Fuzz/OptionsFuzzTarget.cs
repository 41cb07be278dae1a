using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Cli.Fuzz;

/// <summary>
/// One option of <c>ldm generate</c>, <c>img2img</c>, <c>inpaint</c>, <c>outpaint</c> or <c>sample</c> given a hostile value, run in-process through
/// <see cref="CliApp.Run"/>. Correct: exit 0 and PNGs that decode. Refused: exit 1 or 2 with exactly one "error: …"
/// line that names the option. Anything else (an escaped exception, an internal error, several lines) is a bug.
/// </summary>
internal static class OptionsFuzzTarget
{
    /// <summary>Hostile values: not numbers, not finite, negative, zero, out of range, empty, unicode, unknown names.
    /// Huge counts that are valid (a million steps or images) are left out: they are requests the machine serves,
    /// slowly. Huge sizes are in <see cref="Sizes"/>: the memory estimate refuses them before allocating.</summary>
    public static IReadOnlyList<string> Values { get; } =
    [
        "nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "1", "3", "0.5", "1e308", "-1e308", "2147483648", "-2147483649",
        "99999999999999999999", "", " ", "\u00e9\u6f22\U0001F642", "\0", "euler_x", "ddim", "karras", "1.5", "0x10", " 3", "--steps", "cuda:99", "f64", "x.png",
    ];

    /// <summary>Sizes no machine here can serve: refused, in one line, before anything is allocated.</summary>
    public static IReadOnlyList<string> Sizes { get; } = ["65536", "100000", "2147483640"];

    private static readonly string[] GenerateOptions =
        ["prompt", "--steps", "--guidance", "--guidance-rescale", "--sampler", "--schedule", "--seed", "--width", "--height", "--num-images", "--clip-skip",
         "--eta", "--dtype", "--device", "--attention-slicing", "--negative", "--out", "--latents", "--preview", "--preview-every"];

    private static readonly string[] ImageToImageOptions = [.. GenerateOptions, "--strength", "--init"];

    private static readonly string[] InpaintOptions = [.. ImageToImageOptions, "--mask", "--mask-blur", "--fill", "--padding"];

    private static readonly string[] OutpaintOptions = [.. ImageToImageOptions, "--extend", "--mask-blur", "--fill"];

    private static readonly string[] SampleOptions = ["--num", "--scheduler", "--steps", "--seed", "--out", "--columns"];

    // Options whose value is a path: an error that names the path names the option's subject.
    private static readonly string[] PathOptions = ["--out", "--latents", "--init", "--preview", "--mask"];

    // The images a case writes for its command to read (not outputs).
    private static readonly string[] Inputs = ["init.png", "mask.png"];

    public static (string Mutation, FuzzOutcome Outcome, string Message) Run(FuzzRandom random, FuzzSources sources, string work)
    {
        var model = random.Pick(sources.Models);
        var output = Path.Combine(work, "out.png");
        var command = random.Next(sources.DdpmModel is null ? 4 : 5);
        List<string> args = command switch
        {
            0 => ["generate", "a red dress", "--model", model.Path, "--steps", "2", "--seed", "3", "--out", output],
            1 => ["img2img", "a red dress", "--model", model.Path, "--steps", "2", "--seed", "3", "--out", output, "--init", InitImage(work, model.Size)],
            2 => ["inpaint", "a red dress", "--model", model.Path, "--steps", "2", "--seed", "3", "--out", output, "--init", InitImage(work, model.Size),
                  "--mask", MaskImage(work, model.Size)],
            3 => ["outpaint", "a red dress", "--model", model.Path, "--steps", "2", "--seed", "3", "--out", output, "--init", InitImage(work, model.Size),
                  "--extend", "left=8"],
            _ => ["sample", "--model", sources.DdpmModel!, "--num", "1", "--steps", "2", "--seed", "0", "--out", output],
        };
        var option = random.Pick(command switch { 0 => GenerateOptions, 1 => ImageToImageOptions, 2 => InpaintOptions, 3 => OutpaintOptions, _ => SampleOptions });
        var value = option is "--width" or "--height" && random.Next(3) == 0 ? random.Pick(Sizes) : random.Pick(Values);
        // A path is taken inside the case's folder, so that whatever a run writes is checked and then deleted.
        if (PathOptions.Contains(option) && value.Length > 0) value = work + Path.DirectorySeparatorChar + value; // not Path.Combine, which refuses NUL itself
        if (option == "prompt") args[1] = value;
        else if (args.IndexOf(option) is var at and >= 0) args[at + 1] = value;
        else args.AddRange([option, value]);
        var mutation = $"{args[0]} {option} '{(value.StartsWith(work, StringComparison.Ordinal) ? value[(work.Length + 1)..] : value)}'";

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code;
        try
        {
            code = CliApp.Run([.. args], stdout, stderr);
        }
        catch (Exception e)
        {
            return (mutation, FuzzOutcome.Bug, $"escaped the CLI: {e.GetType().Name}: {e.Message}");
        }
        // A path is named by itself; so is a size the memory estimate refuses ("32×100000, 1 image: needs about …").
        var subject = PathOptions.Contains(option) || Sizes.Contains(value) ? value : null;
        var (outcome, message) = Judge(code, stdout.ToString(), stderr.ToString(), work, option, subject);
        if (outcome != FuzzOutcome.Bug && FuzzVerdict.Leftover(work) is { } leftover) (outcome, message) = (FuzzOutcome.Bug, $"left {leftover}");
        return (mutation, outcome, message);
    }

    /// <summary>Judges one run of <c>ldm</c> (in-process or a child process) from its exit code and output.</summary>
    public static (FuzzOutcome, string) Judge(int code, string stdout, string stderr, string work, string option, string? subject)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (code == 0)
        {
            // `sample --out x` writes a PNG whatever the name says: every new file must be an image.
            var images = Directory.GetFiles(work, "*", SearchOption.AllDirectories).Where(p => !Inputs.Contains(Path.GetFileName(p))).ToList();
            if (images.Count == 0) return (FuzzOutcome.Bug, "exit 0 but no image written");
            foreach (var image in images)
            {
                try
                {
                    ImageDecoder.Load(image);
                }
                catch (ImageLoadException e)
                {
                    return (FuzzOutcome.Bug, $"exit 0 but the output does not decode: {e.Message}");
                }
            }
            return (FuzzOutcome.Ok, $"{images.Count} images; {stdout.Trim().Split('\n')[0]}");
        }
        var errors = lines.Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        if (code is not (ErrorReporter.Failure or ErrorReporter.Usage) || errors.Count != 1)
            return (FuzzOutcome.Bug, $"exit {code} with {errors.Count} error lines: {string.Join(" | ", lines)}");
        if (errors[0].Contains("internal error", StringComparison.Ordinal)) return (FuzzOutcome.Bug, errors[0]);
        // The prompt is free text: any clear error will do.
        return option == "prompt" ? (FuzzOutcome.Refused, errors[0]) : FuzzVerdict.OfMessage(errors[0], [.. Names(option), subject]);
    }

    /// <summary>The ways a message may name an option: "--guidance-rescale", "guidance rescale", "guidance_rescale", "GuidanceRescale".</summary>
    private static IEnumerable<string> Names(string option)
    {
        var bare = option.TrimStart('-');
        yield return option;
        yield return bare.Replace('-', ' ');
        yield return bare.Replace('-', '_');
        yield return string.Concat(bare.Split('-').Select(w => char.ToUpperInvariant(w[0]) + w[1..]));
        if (option == "--num-images" || option == "--num") yield return "number of images";
    }

    /// <summary>White (repaint) over the middle half, black elsewhere.</summary>
    private static string MaskImage(string work, int size)
    {
        var path = Path.Combine(work, "mask.png");
        var mask = RgbImage.Filled(size, size, Rgb.Black);
        for (int y = size / 4; y < 3 * size / 4; y++)
            for (int x = size / 4; x < 3 * size / 4; x++) mask.SetPixel(x, y, Rgb.White);
        PngEncoder.Save(path, mask);
        return path;
    }

    private static string InitImage(string work, int size)
    {
        var path = Path.Combine(work, "init.png");
        PngEncoder.Save(path, RgbImage.Filled(size, size, new Rgb(200, 30, 40)));
        return path;
    }
}

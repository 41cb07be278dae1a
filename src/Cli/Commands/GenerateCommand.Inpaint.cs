using System.CommandLine;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Cli.Commands;

// ldm inpaint PROMPT --init IMAGE --mask MASK and ldm outpaint PROMPT --init IMAGE --extend left=128,bottom=64.
internal static partial class GenerateCommand
{
    private static readonly Dictionary<string, MaskedContent> FillNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["original"] = MaskedContent.Original,
        ["latent-noise"] = MaskedContent.LatentNoise,
        ["latent-nothing"] = MaskedContent.LatentNothing,
        ["fill"] = MaskedContent.Fill,
    };

    /// <summary>The options inpaint and outpaint share.</summary>
    private sealed class InpaintOptions(double defaultStrength)
    {
        public readonly Option<string> Init = new Option<string>("--init", "-i") { Description = "The image (PNG, JPEG, BMP, …)", Required = true }.IsPath();
        public readonly Option<double> Strength = new Option<double>("--strength") { Description = "How much to change the masked area: 1 starts it from pure noise", DefaultValueFactory = _ => defaultStrength }.InRange(Ranges.Strength);
        public readonly Option<int> MaskBlur = new Option<int>("--mask-blur") { Description = "Blur the mask by this many pixels (Gaussian σ, as AUTOMATIC1111) and paste the original back through it; 0 = off", DefaultValueFactory = _ => 4 }.AtLeast(0);
        public readonly Option<string> Fill = new("--fill") { Description = "What the masked area starts from (A1111's masked content): original, fill, latent-noise, latent-nothing (the latent ones matter at strength < 1)", DefaultValueFactory = _ => "original" };

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { Init, Strength, MaskBlur, Fill }) command.Options.Add(option);
            command.Validators.Add(result =>
            {
                if (result.GetValue(Fill) is { } fill && !FillNames.ContainsKey(fill))
                    result.AddError($"{Fill.Name}: unknown masked content '{fill}' (known: {string.Join(", ", FillNames.Keys)})");
                if (result.GetValue(MaskBlur) > InpaintRequest.MaxMaskBlur) result.AddError($"{MaskBlur.Name} must be between 0 and {InpaintRequest.MaxMaskBlur} pixels");
            });
        }

        public InpaintRequest Request(GenerationRequest common, ParseResult parsed, RgbImage image, RgbImage mask) => new(common, image, mask)
        {
            Strength = parsed.GetValue(Strength),
            MaskBlur = parsed.GetValue(MaskBlur),
            MaskedContent = FillNames[parsed.GetValue(Fill)!],
        };
    }

    public static Command CreateInpaint(CliContext context)
    {
        var common = new Common();
        var options = new InpaintOptions(defaultStrength: 0.75);
        var mask = new Option<string>("--mask") { Description = "White = repaint, black = keep (read as grayscale; resized to the image when its size differs)", Required = true }.IsPath();
        var onlyMasked = new Option<bool>("--only-masked") { Description = "Generate only the mask's surroundings (its box plus --padding) at the full size and paste them back (A1111's \"Only masked\")" };
        var padding = new Option<int>("--padding") { Description = "With --only-masked: pixels around the mask's box", DefaultValueFactory = _ => 32 }.AtLeast(0);
        var command = new Command("inpaint", "Inpainting: repaint the white part of --mask in --init towards the prompt (inpainting models with 9 input channels or ordinary ones)");
        common.AddTo(command);
        options.AddTo(command);
        command.Options.Add(mask);
        command.Options.Add(onlyMasked);
        command.Options.Add(padding);
        command.SetAction((parsed, cancellation) =>
        {
            // unreadable images and an empty mask fail before the model loads
            var image = RgbImage.Load(parsed.GetValue(options.Init)!);
            var maskImage = RgbImage.Load(parsed.GetValue(mask)!);
            if (maskImage.Width != image.Width || maskImage.Height != image.Height)
                context.Err.WriteLine($"note: the mask is {maskImage.Width}x{maskImage.Height} and the image {image.Width}x{image.Height}: the mask is resized to the image");
            _ = InpaintMask.Prepare(maskImage, image.Width, image.Height, parsed.GetValue(options.MaskBlur));
            return Task.FromResult(Run(context, common, parsed, "inpainting", r => options.Request(r, parsed, image, maskImage) with
            {
                OnlyMasked = parsed.GetValue(onlyMasked),
                Padding = parsed.GetValue(padding),
            }, cancellation));
        });
        return command;
    }

    public static Command CreateOutpaint(CliContext context)
    {
        var common = new Common();
        var options = new InpaintOptions(defaultStrength: 1.0);
        var extend = new Option<string>("--extend") { Description = "Pixels to add per side: left=N,right=N,top=N,bottom=N (any of them); the new area starts as the stretched edge", Required = true };
        var command = new Command("outpaint", "Outpainting: extend the canvas of --init on the chosen sides and paint the new area (and a seam of 2 × --mask-blur) towards the prompt");
        common.AddTo(command);
        options.AddTo(command);
        command.Options.Add(extend);
        command.Validators.Add(result =>
        {
            if (result.GetValue(extend) is { } text && ParseExtension(text) is { Error: { } error }) result.AddError($"{extend.Name}: {error}");
        });
        command.SetAction((parsed, cancellation) =>
        {
            var image = RgbImage.Load(parsed.GetValue(options.Init)!);
            var (canvas, mask) = OutpaintCanvas.Extend(image, ParseExtension(parsed.GetValue(extend)!).Extension!, parsed.GetValue(options.MaskBlur));
            return Task.FromResult(Run(context, common, parsed, "outpainting", r => options.Request(r, parsed, canvas, mask), cancellation));
        });
        return command;
    }

    /// <summary>"left=128,bottom=64" → the extension, or the reason it is not one.</summary>
    internal static (CanvasExtension? Extension, string? Error) ParseExtension(string text)
    {
        var sides = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || pair[0].ToLowerInvariant() is not ("left" or "right" or "top" or "bottom"))
                return (null, $"'{part}' is not SIDE=PIXELS with SIDE one of left, right, top, bottom");
            if (!int.TryParse(pair[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pixels) || pixels > 4096)
                return (null, $"'{part}': the pixels must be a whole number from 0 to 4096");
            if (!sides.TryAdd(pair[0], pixels)) return (null, $"'{pair[0]}' is given twice");
        }
        var extension = new CanvasExtension(sides.GetValueOrDefault("left"), sides.GetValueOrDefault("top"), sides.GetValueOrDefault("right"), sides.GetValueOrDefault("bottom"));
        return extension.Left + extension.Top + extension.Right + extension.Bottom == 0
            ? (null, "give at least one side a positive number of pixels, e.g. left=128,bottom=64")
            : (extension, null);
    }
}

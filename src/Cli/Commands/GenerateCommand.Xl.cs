using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Cli.Generation;
using LatentDiffusion.Onnx;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Cli.Commands;

// SDXL's options of `ldm generate` / `ldm img2img`: second prompts, micro-conditioning, and the base → refiner hand-off.
internal static partial class GenerateCommand
{
    private sealed class XlArguments
    {
        public readonly Option<string?> Prompt2 = new("--prompt-2") { Description = "SDXL: the prompt for the second text encoder (default: the prompt)" };
        public readonly Option<string?> Negative2 = new("--negative-2") { Description = "SDXL: the negative prompt for the second text encoder (default: --negative)" };
        public readonly Option<string?> OriginalSize = new("--original-size") { Description = "SDXL micro-conditioning: original size WxH (default: the output size)" };
        public readonly Option<string?> TargetSize = new("--target-size") { Description = "SDXL micro-conditioning: target size WxH (default: the output size)" };
        public readonly Option<string?> Crop = new("--crop-top-left") { Description = "SDXL micro-conditioning: crop corner TOP,LEFT (default 0,0)" };
        public readonly Option<double?> AestheticScore = new Option<double?>("--aesthetic-score") { Description = "SDXL refiner: aesthetic score (default 6)" }.InRange(NumberRange.Closed(0, 10));
        public readonly Option<double?> NegativeAestheticScore = new Option<double?>("--negative-aesthetic-score") { Description = "SDXL refiner: aesthetic score of the negative half (default 2.5)" }.InRange(NumberRange.Closed(0, 10));
        public readonly Option<string?> Refiner = new Option<string?>("--refiner") { Description = "SDXL: a refiner model folder; the base stops at --refiner-switch and the refiner finishes its latents" }.IsPath();
        public readonly Option<double> RefinerSwitch = new Option<double>("--refiner-switch") { Description = "SDXL: fraction of the schedule the base runs before the refiner takes over", DefaultValueFactory = _ => 0.8 }.InRange(new NumberRange(0, 1, MinInclusive: false, MaxInclusive: false));

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { Prompt2, Negative2, OriginalSize, TargetSize, Crop, AestheticScore, NegativeAestheticScore, Refiner, RefinerSwitch })
                command.Options.Add(option);
        }

        /// <summary>The request's SDXL options, or null when none is given (so that an SD1.x model runs as before).</summary>
        public XlOptions? Options(ParseResult parsed, bool refining)
        {
            var given = new Option[] { Prompt2, Negative2, OriginalSize, TargetSize, Crop, AestheticScore, NegativeAestheticScore }
                .Any(o => parsed.GetResult(o) is { Implicit: false });
            if (!given && !refining) return null;
            var defaults = new XlOptions();
            return new XlOptions
            {
                Prompt2 = parsed.GetValue(Prompt2),
                NegativePrompt2 = parsed.GetValue(Negative2),
                OriginalSize = Size(parsed.GetValue(OriginalSize), OriginalSize.Name),
                TargetSize = Size(parsed.GetValue(TargetSize), TargetSize.Name),
                CropsCoordsTopLeft = Corner(parsed.GetValue(Crop)),
                AestheticScore = parsed.GetValue(AestheticScore) ?? defaults.AestheticScore,
                NegativeAestheticScore = parsed.GetValue(NegativeAestheticScore) ?? defaults.NegativeAestheticScore,
                DenoisingEnd = refining ? parsed.GetValue(RefinerSwitch) : null,
            };
        }

        /// <summary>The --refiner model, checked to be an SDXL refiner for an SDXL base; null without --refiner.</summary>
        public StableDiffusionPipeline? LoadRefiner(ParseResult parsed, StableDiffusionPipeline basePipe)
        {
            if (parsed.GetValue(Refiner) is not { } path) return null;
            if (basePipe.Xl is null) throw new UsageException($"{Refiner.Name}: the base model {basePipe.ModelName} is not an SDXL model; only SDXL hands its latents to a refiner");
            var refiner = ModelLoader.Load(path, null, basePipe.Options); // a diffusers or an ONNX refiner, by the folder
            if (refiner.IsRefiner && refiner.Models.Denoiser.LatentChannels == basePipe.Models.Denoiser.LatentChannels && refiner.VaeScaleFactor == basePipe.VaeScaleFactor)
                return refiner;
            refiner.Dispose();
            throw new UsageException($"{Refiner.Name}: {path} is not an SDXL refiner (a StableDiffusionXLImg2ImgPipeline folder with requires_aesthetics_score true, as stabilityai/stable-diffusion-xl-refiner-1.0)");
        }

        /// <summary>The refiner's half of the hand-off; the images and parameters are the refiner's, named after both models as AUTOMATIC1111 writes them.</summary>
        public static GenerationResult Refine(CliContext context, StableDiffusionPipeline refiner, GenerationRequest request, GenerationResult generated,
            string? preview, CancellationToken cancellation)
        {
            using (generated)
            {
                var start = request.Xl!.DenoisingEnd!.Value;
                var refined = ProgressDisplay.Run(context, "refining", display =>
                    refiner.Refine(request with { LatentOutput = false }, generated.Latents, start, PreviewWriter.Around(display.Sink<GenerationProgress>(ProgressText.Of), preview), cancellation),
                    clearWhenDone: true);
                var parameters = generated.Parameters.Select(p => p with
                {
                    Extra = [.. p.Extra, new("Refiner", refiner.ModelName), new("Refiner switch at", start.ToString(CultureInfo.InvariantCulture))],
                }).ToList();
                return refined with { Parameters = parameters };
            }
        }

        private static PixelSize? Size(string? text, string option)
        {
            if (text is null) return null;
            var parts = text.Split('x', 'X');
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var w) &&
                int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var h) && w > 0 && h > 0)
                return new PixelSize(h, w);
            throw new UsageException($"{option} must be WIDTHxHEIGHT in pixels (e.g. 1024x1024), got '{text}'");
        }

        private CropCoords Corner(string? text)
        {
            if (text is null) return default;
            var parts = text.Split(',');
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var top) &&
                int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var left))
                return new CropCoords(top, left);
            throw new UsageException($"{Crop.Name} must be TOP,LEFT in pixels (e.g. 0,0), got '{text}'");
        }
    }
}

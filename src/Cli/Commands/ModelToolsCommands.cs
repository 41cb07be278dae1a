using System.CommandLine;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Pipeline.Checkpoints;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm convert</c>, <c>ldm tokenize</c> and <c>ldm vae roundtrip</c>: tools around model files.</summary>
internal static class ModelToolsCommands
{
    public static Command CreateConvert(CliContext context)
    {
        var file = new Argument<string>("file") { Description = "A single-file Stable Diffusion 1.x/2.x or SDXL (base or refiner) checkpoint (.safetensors, original layout)" };
        var output = new Argument<string>("outdir") { Description = "The diffusers folder to write" };
        var family = new Option<string?>("--family") { Description = "Override the inferred family: sd1, sd2, sdxl or sdxl-refiner" };
        var prediction = new Option<string?>("--prediction-type") { Description = "Override the inferred prediction type: epsilon or v_prediction" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "A CLIP tokenizer folder or bpe_simple_vocab_16e6.txt.gz (single files carry none)" }.IsPath();
        var config = new Option<string?>("--config") { Description = "A diffusers folder whose component configs describe the checkpoint (instead of the family's)" }.IsPath();
        var command = new Command("convert", "Convert a single-file checkpoint to a diffusers folder") { file, output, family, prediction, tokenizer, config };
        command.SetAction(parsed =>
        {
            var path = parsed.GetValue(file)!;
            var kind = Override(path, parsed.GetValue(family), parsed.GetValue(prediction));
            using var pipe = StableDiffusionPipeline.FromSingleFile(path, new PipelineOptions
            {
                CheckpointKind = kind,
                TokenizerPath = parsed.GetValue(tokenizer),
                ConfigSource = parsed.GetValue(config),
            });
            pipe.Save(parsed.GetValue(output)!);
            context.Out.WriteLine(Path.GetFullPath(parsed.GetValue(output)!));
            return 0;
        });
        return command;
    }

    /// <summary>The family/prediction the user chose; an unspecified half is inferred (family) or follows the family (prediction).</summary>
    private static CheckpointKind? Override(string path, string? family, string? prediction)
    {
        if (family is null && prediction is null) return null;
        var chosenFamily = family switch
        {
            null => ProbeFamily(path),
            "sd1" => ModelFamily.StableDiffusion1,
            "sd2" => ModelFamily.StableDiffusion2,
            "sdxl" => ModelFamily.StableDiffusionXL,
            "sdxl-refiner" => ModelFamily.StableDiffusionXLRefiner,
            _ => throw new ArgumentException($"--family must be sd1, sd2, sdxl or sdxl-refiner, not {family}"),
        };
        var chosenPrediction = prediction ?? (chosenFamily == ModelFamily.StableDiffusion2 ? "v_prediction" : "epsilon");
        if (chosenPrediction is not ("epsilon" or "v_prediction"))
            throw new ArgumentException($"--prediction-type must be epsilon or v_prediction, not {chosenPrediction}");
        return new CheckpointKind(chosenFamily, chosenPrediction);
    }

    private static ModelFamily ProbeFamily(string path)
    {
        using var probe = SingleFileCheckpoint.Open(path);
        return probe.Kind.Family;
    }

    public static Command CreateTokenize(CliContext context)
    {
        var model = new Option<string>("--model", "-m") { Description = "A model folder (its tokenizer/), a tokenizer folder, or bpe_simple_vocab_16e6.txt.gz", Required = true }.IsPath();
        var prompt = new Argument<string>("prompt") { Description = "Text to tokenize" };
        var tokens = new Option<bool>("--tokens") { Description = "Also print the BPE tokens" };
        var command = new Command("tokenize", "Print the CLIP token ids of a prompt (77, padded)") { prompt, model, tokens };
        command.SetAction(parsed =>
        {
            var path = parsed.GetValue(model)!;
            var tokenizer = File.Exists(path) ? ClipTokenizer.FromOpenAiBpe(path)
                : Directory.Exists(Path.Combine(path, "tokenizer")) ? ClipTokenizer.FromDirectory(Path.Combine(path, "tokenizer"))
                : ClipTokenizer.FromDirectory(path);
            var text = parsed.GetValue(prompt)!;
            var encoding = tokenizer.Encode(text);
            context.Out.WriteLine(string.Join(" ", encoding.InputIds));
            if (parsed.GetValue(tokens)) context.Out.WriteLine(string.Join(" ", tokenizer.Tokenize(text)));
            if (encoding.Truncated) context.Warn($"the prompt is {encoding.UntruncatedIds.Length} tokens; {encoding.DroppedTokenCount} were cut at {encoding.InputIds.Length}");
            return 0;
        });
        return command;
    }

    public static Command CreateVae(CliContext context)
    {
        var model = new Option<string>("--model", "-m") { Description = "A model folder (its vae/) or a vae folder", Required = true }.IsPath();
        var image = new Option<string>("--image", "-i") { Description = "The image to encode", Required = true }.IsPath();
        var output = new Option<string>("--out", "-o") { Description = "Where to write the decoded PNG", Required = true }.IsPath();
        var roundtrip = new Command("roundtrip", "Encode an image to the latent mean, decode it, write it and print the PSNR") { model, image, output };
        roundtrip.SetAction(parsed =>
        {
            var input = RgbImage.Load(parsed.GetValue(image)!).ToRgb();
            var path = parsed.GetValue(model)!;
            var folder = Directory.Exists(Path.Combine(path, "vae")) ? Path.Combine(path, "vae") : path;
            using var vae = AutoencoderKL.FromPretrained(folder);
            var factor = vae.Config.DownscaleFactor;
            var sized = input.Width % factor == 0 && input.Height % factor == 0 ? input : input.CenterCrop(input.Width / factor * factor, input.Height / factor * factor);
            RgbImage decoded;
            using (Autograd.InferenceMode())
            using (var scope = DisposeScope.Enter())
            {
                using var posterior = vae.Encode(sized.ToTensor());
                decoded = RgbImage.FromTensor(vae.Decode(posterior.Mode()))[0];
            }
            decoded.SavePng(parsed.GetValue(output)!);
            context.Out.WriteLine($"{Path.GetFullPath(parsed.GetValue(output)!)}");
            context.Out.WriteLine(FormattableString.Invariant($"PSNR {Psnr(sized, decoded):F2} dB ({sized.Width}x{sized.Height})"));
            return 0;
        });
        var command = new Command("vae", "VAE tools");
        command.Subcommands.Add(roundtrip);
        return command;
    }

    /// <summary>Peak signal-to-noise ratio of 8-bit images: 10 log10(255² / MSE).</summary>
    public static double Psnr(RgbImage a, RgbImage b)
    {
        double sum = 0;
        var (pa, pb) = (a.Pixels, b.Pixels);
        for (int i = 0; i < pa.Length; i++)
        {
            double d = pa[i] - pb[i];
            sum += d * d;
        }
        var mse = sum / pa.Length;
        return mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(255.0 * 255.0 / mse);
    }
}

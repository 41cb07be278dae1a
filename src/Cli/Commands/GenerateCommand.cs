using LatentDiffusion.Onnx;
using System.CommandLine;
using System.Diagnostics;
using LatentDiffusion.Cli.Generation;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm generate PROMPT</c> and <c>ldm img2img PROMPT --init IMAGE</c>: Stable Diffusion from the command line.</summary>
internal static partial class GenerateCommand
{
    private sealed class Common
    {
        public readonly Argument<string> Prompt = new("prompt") { Description = "What to draw" };
        public readonly Option<string> Negative = new("--negative") { Description = "What to avoid (negative prompt)", DefaultValueFactory = _ => "" };
        public readonly Option<string?> Model = new Option<string?>("--model", "-m") { Description = "A diffusers model folder, an ONNX Stable Diffusion folder, or a single-file .safetensors checkpoint (default: the embedded model)" }.IsPath();
        public readonly Option<string> Engine = new("--engine") { Description = $"Engine: {ModelLoader.EngineHelp}", DefaultValueFactory = _ => "auto" };
        public readonly Option<int?> Steps = new("--steps") { Description = "Denoising steps (default 30)" };
        public readonly Option<double> Guidance = new Option<double>("--guidance", "--cfg") { Description = "Classifier-free guidance scale (≤ 1 turns guidance off)", DefaultValueFactory = _ => 7.5 }.InRange(Ranges.Guidance);
        public readonly Option<double> GuidanceRescale = new Option<double>("--guidance-rescale") { Description = "Rescale the guided prediction (0 = off, 0.7 for zero-SNR models)" }.InRange(Ranges.GuidanceRescale);
        public readonly Option<string?> Sampler = new("--sampler", "-s") { Description = $"{string.Join(", ", Samplers.Names)} (default: the model's scheduler)" };
        public readonly Option<string?> Schedule = new("--schedule") { Description = $"Schedule type: {string.Join(", ", ScheduleTypes.Names)} (default: the sampler's own; `ldm samplers` lists which each supports)" };
        public readonly Option<long> Seed = new("--seed") { Description = "Random seed; -1 picks one (printed and stored in the PNG)", DefaultValueFactory = _ => -1 };
        public readonly Option<int?> Width = new("--width", "-W") { Description = "Width in pixels, a multiple of the VAE's scale factor, 8 for Stable Diffusion (default: the model's)" };
        public readonly Option<int?> Height = new("--height", "-H") { Description = "Height in pixels, a multiple of the VAE's scale factor, 8 for Stable Diffusion (default: the model's)" };
        public readonly Option<int> NumImages = new("--num-images", "-n") { Description = "Images to make; image i uses seed + i", DefaultValueFactory = _ => 1 };
        public readonly Option<int?> BatchSize = new Option<int?>("--batch-size") { Description = "Images denoised together; --num-images run in batches of this many (default: as many as fit in half the free memory, at most 8 on a CPU)" }.AtLeast(1);
        public readonly Option<int> ClipSkip = new("--clip-skip") { Description = "AUTOMATIC1111's clip skip: 1 = last text-encoder layer, 2 = penultimate; range 1 to the text encoder's layer count", DefaultValueFactory = _ => 1 };
        public readonly Option<double> Eta = new Option<double>("--eta") { Description = "η of the samplers whose step uses it (DDIM, and TCD as its γ; 0 = deterministic, 1 = DDPM-like); the others ignore it" }.InRange(Ranges.Eta);
        public readonly Option<string> DType = new("--dtype") { Description = DeviceOptions.DTypeHelp, DefaultValueFactory = _ => "f32" };
        public readonly Option<string> Device = new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        public readonly Option<string?> Latents = new Option<string?>("--latents") { Description = "Initial latents [n, C, h/f, w/f] (f: the VAE's scale factor) from a .safetensors file (tensor 'latents')" }.IsPath();
        public readonly Option<string?> SaveLatents = new Option<string?>("--save-latents") { Description = "Write the final latents (before VAE decoding) to a .safetensors file" }.IsPath();
        public readonly Option<string?> Out = new Option<string?>("--out", "-o") { Description = "Output PNG (default outputs/<time>-<seed>.png); several images add -0, -1, … and a -grid" }.IsPath();
        public readonly Option<string?> Tokenizer = new Option<string?>("--tokenizer") { Description = "Single-file checkpoints: a CLIP tokenizer folder or bpe_simple_vocab_16e6.txt.gz" }.IsPath();
        public readonly Option<int?> AttentionSlice = new Option<int?>("--attention-slicing") { Description = "Compute attention in slices of this many rows (less memory); at least 1" }.AtLeast(1);
        public readonly Option<bool> VaeTiling = new("--vae-tiling") { Description = "Decode large images tile by tile" };
        public readonly Option<string?> Preview = new Option<string?>("--preview") { Description = "Keep this PNG updated with a preview of the first image while denoising" }.IsPath();
        public readonly Option<int> PreviewEvery = new Option<int>("--preview-every") { Description = "Steps between previews (with --preview)", DefaultValueFactory = _ => 5 }.AtLeast(1);
        public readonly ControlNetOptions ControlNet = new();
        public readonly AdapterOptions Adapters = new();
        public readonly XlArguments Xl = new();

        public void AddTo(Command command)
        {
            command.Arguments.Add(Prompt);
            foreach (var option in new Option[] { Negative, Model, Engine, Steps, Guidance, GuidanceRescale, Sampler, Schedule, Seed, Width, Height, NumImages, BatchSize, ClipSkip, Eta, DType, Device, Latents, SaveLatents, Out, Tokenizer, AttentionSlice, VaeTiling, Preview, PreviewEvery }.Concat(Adapters.All))
                command.Options.Add(option);
            foreach (var option in ControlNet.All) command.Options.Add(option);
            Xl.AddTo(command);
            command.Validators.Add(ValidateSchedule);
            command.ChecksDevice(Device, DType, r => ModelLoader.UsesOnnx(r.GetValue(Model), r.GetValue(Engine)));
        }

        // An unknown schedule type, or one the named sampler does not support, is a usage error naming --schedule
        // (an unknown sampler is reported by Run, before the model loads).
        private void ValidateSchedule(System.CommandLine.Parsing.CommandResult result)
        {
            if (result.GetValue(Schedule) is not { } name) return;
            if (!ScheduleTypes.TryGet(name, out var schedule))
            {
                result.AddError($"{Schedule.Name}: unknown schedule type '{name}' (known: {string.Join(", ", ScheduleTypes.Names)})");
                return;
            }
            if (result.GetValue(Sampler) is { } samplerName && Samplers.TryGet(samplerName, out var sampler) && !Samplers.SchedulesOf(sampler).Contains(schedule))
            {
                result.AddError($"{Schedule.Name}: sampler '{sampler.Name}' does not support schedule type '{schedule.Name}' "
                    + $"(it supports: {string.Join(", ", Samplers.SchedulesOf(sampler).Select(t => t.Name))})");
            }
        }
    }

    public static Command CreateGenerate(CliContext context)
    {
        var common = new Common();
        var command = new Command("generate", "Text to image with a Stable Diffusion model (default: the embedded Fashion-colours model)");
        common.AddTo(command);
        command.ChecksDevice(common.Device, common.DType);
        command.SetAction((parsed, cancellation) => Task.FromResult(Run(context, common, parsed, "generating", null, cancellation)));
        return command;
    }

    public static Command CreateImageToImage(CliContext context)
    {
        var common = new Common();
        var init = new Option<string>("--init", "-i") { Description = "The reference image (PNG, JPEG, BMP, …)", Required = true }.IsPath();
        var strength = new Option<double>("--strength") { Description = "How much to change it: 1 ignores the image", DefaultValueFactory = _ => 0.75 }.InRange(Ranges.Strength);
        var command = new Command("img2img", "Image to image: a reference image noised to --strength, then denoised towards the prompt");
        common.AddTo(command);
        command.Options.Add(init);
        command.Options.Add(strength);
        command.SetAction((parsed, cancellation) =>
        {
            var image = RgbImage.Load(parsed.GetValue(init)!); // an unreadable image fails before the model loads
            return Task.FromResult(Run(context, common, parsed, "img2img", r => new ImageToImageRequest(r, image) { Strength = parsed.GetValue(strength) }, cancellation));
        });
        return command;
    }

    /// <summary>
    /// Loads the model and runs the request that <paramref name="mode"/> makes of the common options (text to image when
    /// null): an <see cref="ImageToImageRequest"/> or an <see cref="InpaintRequest"/>, whose images the command read first.
    /// </summary>
    private static int Run(CliContext context, Common o, ParseResult parsed, string activity, Func<GenerationRequest, GenerationRequest>? mode, CancellationToken cancellation)
    {
        // The parameters travel in a PNG text chunk, which cannot hold NUL: refuse it now, not after generating (found by ldm fuzz).
        foreach (var (name, text) in new[] { ("the prompt", parsed.GetValue(o.Prompt)!), (o.Negative.Name, parsed.GetValue(o.Negative)!) })
            if (text.Contains('\0', StringComparison.Ordinal))
                throw new UsageException($"{name} contains a NUL character, which the PNG's parameters text cannot hold");
        var seed = parsed.GetValue(o.Seed);
        if (seed < -1) throw new ArgumentOutOfRangeException("--seed", seed, "--seed must be ≥ 0, or -1 for a random seed");
        if (seed == -1) seed = Random.Shared.NextInt64(0, uint.MaxValue);
        var device = Torch.Device.Parse(parsed.GetValue(o.Device)!);
        var dtype = DeviceOptions.ParseDType(parsed.GetValue(o.DType)!, device);
        if (dtype is not (Torch.DType.Float32 or Torch.DType.BFloat16 or Torch.DType.Float16))
            throw new ArgumentException($"--dtype must be f32, bf16, f16 or auto, not {parsed.GetValue(o.DType)}");
        var controls = o.ControlNet.Read(parsed); // an unreadable control image fails before the model loads
        var outPath = parsed.GetValue(o.Out) ?? Path.Combine("outputs", $"{DateTime.Now:yyyyMMdd-HHmmss}-{seed}.png");
        if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--out must name a .png file, not {outPath}");

        if (parsed.GetValue(o.Sampler) is { } samplerName) _ = Samplers.Get(samplerName); // an unknown name fails before the model loads
        var adapters = o.Adapters.Parse(parsed); // a missing LoRA or embedding file fails before the model loads
        var modelPath = DefaultModel.Resolve(parsed.GetValue(o.Model));
        var clock = Stopwatch.StartNew();
        using var pipe = ModelLoader.Load(modelPath, parsed.GetValue(o.Engine), new PipelineOptions
        {
            Device = device,
            DType = dtype,
            TokenizerPath = parsed.GetValue(o.Tokenizer),
            AttentionSliceSize = parsed.GetValue(o.AttentionSlice),
            VaeTiling = parsed.GetValue(o.VaeTiling),
        });
        using var refiner = o.Xl.LoadRefiner(parsed, pipe);
        var loadTime = clock.Elapsed;
        var layers = pipe.Models.TextEncoder.NumLayers; // the bound of --clip-skip is known only now
        if (!ClipSkipRange.Contains(parsed.GetValue(o.ClipSkip), layers))
            throw new UsageException($"{o.ClipSkip.Name} {ClipSkipRange.Describe(layers)}, got {parsed.GetValue(o.ClipSkip)}");

        using var latents = parsed.GetValue(o.Latents) is { } latentsPath ? LoadLatents(latentsPath) : null;
        var controlNets = new List<Pipeline.Engines.IControlNet>();
        using var disposeControlNets = new DisposeAll(controlNets);
        var controlUnits = o.ControlNet.Units(parsed, pipe, controls, controlNets);
        var common = new GenerationRequest
        {
            Prompt = parsed.GetValue(o.Prompt)!,
            NegativePrompt = parsed.GetValue(o.Negative)!,
            Steps = parsed.GetValue(o.Steps) ?? 30,
            GuidanceScale = parsed.GetValue(o.Guidance),
            GuidanceRescale = parsed.GetValue(o.GuidanceRescale),
            Sampler = parsed.GetValue(o.Sampler),
            Schedule = parsed.GetValue(o.Schedule),
            Seed = (ulong)seed,
            Width = parsed.GetValue(o.Width),
            Height = parsed.GetValue(o.Height),
            NumImages = parsed.GetValue(o.NumImages),
            BatchSize = parsed.GetValue(o.BatchSize),
            ClipSkip = parsed.GetValue(o.ClipSkip),
            Eta = parsed.GetValue(o.Eta),
            Latents = latents,
            PreviewEvery = parsed.GetValue(o.Preview) is null ? 0 : parsed.GetValue(o.PreviewEvery),
            ControlNets = controlUnits,
            GuessMode = parsed.GetValue(o.ControlNet.GuessMode),
            Xl = o.Xl.Options(parsed, refiner is not null),
            // the base hands its noisy latents to the refiner undecoded (diffusers' output_type="latent")
            LatentOutput = refiner is not null,
        };
        var request = adapters.Apply(pipe, mode is null ? common : mode(common), context);
        if (parsed.GetValue(o.Preview) is { } previewPath && !previewPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--preview must name a .png file, not {previewPath}");
        try
        {
            pipe.Validate(request); // sizes must be multiples of this model's VAE factor
        }
        catch (ArgumentException e) when (e.ParamName is "schedule" or nameof(GenerationRequest.Schedule))
        {
            // --schedule without --sampler applies to the model's own sampler, known only now
            throw new UsageException($"{o.Schedule.Name}: {ErrorReporter.Describe(e)}");
        }

        clock.Restart();
        var preview = parsed.GetValue(o.Preview);
        var generated = ProgressDisplay.Run(context, activity, display =>
        {
            var progress = PreviewWriter.Around(display.Sink<GenerationProgress>(ProgressText.Of), preview);
            return request switch
            {
                InpaintRequest inpaint => pipe.Inpaint(inpaint, progress, cancellation),
                ImageToImageRequest img2img => pipe.ImageToImage(img2img, progress, cancellation),
                _ => pipe.TextToImage(request, progress, cancellation),
            };
        }, clearWhenDone: true);
        // --refiner: the base stopped at the switch; the refiner continues its latents (undecoded) to the end.
        using var result = refiner is null ? generated : XlArguments.Refine(context, refiner, request, generated, preview, cancellation);
        var generateTime = clock.Elapsed;
        foreach (var warning in result.Warnings) context.Warn(warning);

        foreach (var path in WriteImages(result, outPath)) context.Out.WriteLine(Path.GetFullPath(path));
        if (parsed.GetValue(o.SaveLatents) is { } saveLatents)
        {
            SafeTensorsFile.Save(saveLatents, [new("latents", result.Latents)]);
            context.Out.WriteLine(Path.GetFullPath(saveLatents));
        }
        context.Err.WriteLine($"seed {seed}; loaded in {loadTime.TotalSeconds:F1} s, generated in {generateTime.TotalSeconds:F1} s");
        return 0;
    }

    private sealed class DisposeAll(List<Pipeline.Engines.IControlNet> items) : IDisposable
    {
        public void Dispose() => items.ForEach(i => i.Dispose());
    }

    private static Tensor LoadLatents(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        var name = file.Contains("latents") ? "latents" : file.Keys.Count == 1 ? file.Keys[0]
            : throw new SafeTensorsException(path, "has no tensor named 'latents'");
        return file.Load(name, Torch.DType.Float32);
    }

    /// <summary>One PNG per image (with the generation parameters) and a grid when there are several.</summary>
    private static List<string> WriteImages(GenerationResult result, string outPath)
    {
        var written = new List<string>();
        if (result.Images.Count == 1)
        {
            result.Images[0].SavePng(outPath, result.Parameters[0]);
            written.Add(outPath);
            return written;
        }
        var stem = Path.Combine(Path.GetDirectoryName(outPath) ?? "", Path.GetFileNameWithoutExtension(outPath));
        for (int i = 0; i < result.Images.Count; i++)
        {
            var path = $"{stem}-{i}.png";
            result.Images[i].SavePng(path, result.Parameters[i]);
            written.Add(path);
        }
        var grid = ImageGrid.Compose(result.Images);
        grid.SavePng($"{stem}-grid.png", result.Parameters[0]);
        written.Add($"{stem}-grid.png");
        return written;
    }
}

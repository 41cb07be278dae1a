using System.CommandLine;
using LatentDiffusion.Cli.Benchmarks;
using LatentDiffusion.Torch;
using Spectre.Console;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm bench unet|vae|text</c>: one forward pass of a Stable Diffusion model, random weights, timed.</summary>
internal static class BenchModelsCommand
{
    public const int DefaultRepeat = 3;

    /// <summary>Adds the model benchmarks to <paramref name="bench"/>.</summary>
    public static void AddTo(Command bench, CliContext context)
    {
        bench.Subcommands.Add(Create(context, "unet", "configs/models/sd15-unet.json",
            "U-Net forward (UNet2DConditionModel from a config, random weights): seconds, GFLOP/s, peak memory",
            (command, config, common) =>
            {
                var size = new Option<int>("--size") { Description = "Image size in pixels (latents are size/8)", DefaultValueFactory = _ => 256 }.AtLeast(8);
                var batch = new Option<int>("--batch", "-b") { Description = "Batch size", DefaultValueFactory = _ => 2 }.AtLeast(1);
                var engine = new Option<string>("--engine") { Description = "torch (libtorch), or onnx (ONNX Runtime on the same weights, exported to ONNX first; f32, CPU)", DefaultValueFactory = _ => "torch" }.OneOf("torch", "onnx");
                command.Options.Add(size);
                command.Options.Add(batch);
                command.Options.Add(engine);
                return (parsed, ct) => ModelBenchmark.UNet(parsed.GetValue(config)!, parsed.GetValue(size), parsed.GetValue(batch),
                    common.DType(parsed), common.Device(parsed), parsed.GetValue(common.Repeat), ct, onnx: parsed.GetValue(engine) == "onnx", f32Reference: !parsed.GetValue(common.NoF32Reference), profile: common.Profile(parsed));
            }));
        bench.Subcommands.Add(Create(context, "vae", "configs/models/sd15-vae.json",
            "VAE decode (AutoencoderKL from a config, random weights) of [batch, 4, n, n] latents: seconds, GFLOP/s, peak memory",
            (command, config, common) =>
            {
                var latent = new Option<int>("--latent-size") { Description = "Latent height and width (32 → a 256×256 image with SD's VAE)", DefaultValueFactory = _ => 32 }.AtLeast(1);
                var batch = new Option<int>("--batch", "-b") { Description = "Batch size", DefaultValueFactory = _ => 1 }.AtLeast(1);
                var tiling = new Option<bool>("--tiling") { Description = "Decode in overlapping tiles (diffusers' enable_tiling): how 1024×1024 fits in memory" };
                var slicing = new Option<bool>("--slicing") { Description = "Decode one image of the batch at a time (diffusers' enable_slicing)" };
                command.Options.Add(latent);
                command.Options.Add(batch);
                command.Options.Add(tiling);
                command.Options.Add(slicing);
                return (parsed, ct) => ModelBenchmark.VaeDecode(parsed.GetValue(config)!, parsed.GetValue(latent), parsed.GetValue(batch),
                    common.DType(parsed), common.Device(parsed), parsed.GetValue(common.Repeat), parsed.GetValue(tiling), parsed.GetValue(slicing), ct,
                    !parsed.GetValue(common.NoF32Reference), common.Profile(parsed));
            }));
        bench.Subcommands.Add(Create(context, "text", "configs/models/sd15-text-encoder.json",
            "CLIP text encoder forward (from a config, random weights) on batch × 77 tokens: seconds, GFLOP/s, peak memory",
            (command, config, common) =>
            {
                var batch = new Option<int>("--batch", "-b") { Description = "Batch size", DefaultValueFactory = _ => 2 }.AtLeast(1);
                command.Options.Add(batch);
                return (parsed, ct) => ModelBenchmark.TextEncoder(parsed.GetValue(config)!, parsed.GetValue(batch),
                    common.DType(parsed), common.Device(parsed), parsed.GetValue(common.Repeat), ct, !parsed.GetValue(common.NoF32Reference), common.Profile(parsed));
            }));
    }

    private sealed class Common
    {
        public Option<string> DTypeOption { get; } = new Option<string>("--dtype")
        {
            Description = "f32, or bf16 (also runs f32 on the same weights and reports the parity error)",
            DefaultValueFactory = _ => "f32",
        }.OneOf("f32", "bf16");

        public Option<bool> NoF32Reference { get; } = new("--no-f32-reference")
        {
            Description = "With --dtype bf16: skip the f32 run and parity; the model is bf16 from the start, so the peak memory is the bf16 model's",
        };

        public Option<bool> ProfileOption { get; } = new("--profile")
        {
            Description = "Profile one more forward pass: time per operator category and the top operators (libtorch's top-level ops; ONNX Runtime's own profiler)",
        };

        public Option<bool> ProfileShapes { get; } = new("--profile-shapes")
        {
            Description = "With --profile: list the operators by input shapes too (which convolution is slow)",
        };

        public ProfileMode Profile(ParseResult parsed) =>
            !parsed.GetValue(ProfileOption) ? ProfileMode.None : parsed.GetValue(ProfileShapes) ? ProfileMode.ByShape : ProfileMode.ByOp;

        public Option<string> DeviceOption { get; } = new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };

        public Option<int> Repeat { get; } = new Option<int>("--repeat", "-n")
        {
            Description = "Timed runs after one warm-up (the median is reported)",
            DefaultValueFactory = _ => DefaultRepeat,
        }.AtLeast(1);

        public Option<int> Threads { get; } = new Option<int>("--threads")
        {
            Description = "Intra-op threads; 0 keeps the default",
        }.AtLeast(0);

        public DType DType(ParseResult parsed) =>
            parsed.GetValue(DTypeOption)!.Equals("bf16", StringComparison.OrdinalIgnoreCase) ? Torch.DType.BFloat16 : Torch.DType.Float32;

        /// <summary>The device, which the command's <see cref="DeviceOptions.ChecksDevice"/> validator has already checked.</summary>
        public Device Device(ParseResult parsed) => Torch.Device.Parse(parsed.GetValue(DeviceOption)!);
    }

    private static Command Create(CliContext context, string name, string defaultConfig, string description,
        Func<Command, Option<string>, Common, Func<ParseResult, CancellationToken, ModelBenchResult>> configure)
    {
        var config = new Option<string>("--config", "-c") { Description = "Model config (diffusers / transformers config.json)", DefaultValueFactory = _ => defaultConfig }.ExistingFile().IsPath();
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of a table" };
        var common = new Common();
        var command = new Command(name, description)
        {
            config, common.DTypeOption, common.NoF32Reference, common.DeviceOption, common.Repeat, common.Threads, common.ProfileOption, common.ProfileShapes, json,
        };
        command.ChecksDevice(common.DeviceOption); // its --dtype (f32 or bf16) runs everywhere
        var run = configure(command, config, common);
        command.SetAction((parsed, cancellationToken) =>
        {
            if (parsed.GetValue(common.Threads) is > 0 and var threads) TorchRuntime.Threads = threads;
            if (TorchRuntime.IsReferenceBlas) context.Warn(InfoCommand.ReferenceBlasWarning);
            var result = run(parsed, cancellationToken);
            if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(result));
            else Print(context, result);
            return Task.FromResult(0);
        });
        return command;
    }

    private static void Print(CliContext context, ModelBenchResult r)
    {
        var table = new Table().Border(TableBorder.Rounded).HideHeaders().AddColumn("measure").AddColumn("value");
        void Row(string k, string v) => table.AddRow(new Text(k), new Text(v));
        Row("model", $"{r.Model} ({r.Config}, {r.Parameters:N0} parameters)");
        Row("input", r.Input);
        Row("engine", r.Engine);
        Row("dtype / device", $"{r.Dtype} / {r.Device}");
        Row("seconds (median)", CommandSupport.F(r.Seconds, 4));
        Row("GFLOP per pass", CommandSupport.F(r.Gflop, 2));
        Row("GFLOP/s", CommandSupport.F(r.Gflops, 2));
        Row("peak RSS (MB)", CommandSupport.F(r.PeakRssMb, 1));
        if (r.CudaMemoryUsedMb is { } cuda) Row("CUDA memory in use (MB)", CommandSupport.F(cuda, 1));
        if (r.F32Seconds is { } f32) Row("f32 seconds (same weights)", CommandSupport.F(f32, 4) + $" (bf16 speed-up {CommandSupport.F(f32 / r.Seconds, 2)}×)");
        if (r.ParityMaxAbsDiff is { } parity) Row("bf16 vs f32 max |diff|", $"{parity:G4} (f32 output max |x| {r.OutputMaxAbs:G4})");
        context.Console.Write(table);
        if (r.Profile is { } profile) PrintProfile(context, profile);
        var streams = r.Streams > 1 ? $" (the batch as {r.Streams} streams of {r.Threads / r.Streams})" : "";
        context.Out.WriteLine($"libtorch {r.Libtorch}, {r.Threads} threads{streams}, median of {r.Repeat} runs after one warm-up; FLOPs: {r.FlopMethod}");
    }

    private static void PrintProfile(CliContext context, ModelProfile p)
    {
        static string Rate(double? gflops) => gflops is { } g ? CommandSupport.F(g, 1) : "–";
        var categories = new Table().Border(TableBorder.Rounded).Title($"profile: {p.Source}")
            .AddColumn("category").AddColumn("calls").AddColumn("ms").AddColumn("share").AddColumn("GFLOP/s");
        foreach (var c in p.Categories)
            categories.AddRow(c.Category, c.Calls.ToString(System.Globalization.CultureInfo.InvariantCulture), CommandSupport.F(c.Ms, 1), $"{c.Share:P1}", Rate(c.Gflops));
        categories.AddRow("outside the operators", "", CommandSupport.F(p.OutsideOpsMs, 1), $"{p.OutsideOpsMs / p.WallMs:P1}", "");
        categories.AddRow("wall", "", CommandSupport.F(p.WallMs, 1), "100 %", "");
        context.Console.Write(categories);
        var top = new Table().Border(TableBorder.Rounded).Title($"top {p.Top.Count} operators")
            .AddColumn("operator").AddColumn("category").AddColumn("calls").AddColumn("ms").AddColumn("share").AddColumn("GFLOP/s");
        foreach (var o in p.Top)
            top.AddRow(new Text(o.Op), new Text(o.Category), new Text(o.Calls.ToString(System.Globalization.CultureInfo.InvariantCulture)), new Text(CommandSupport.F(o.Ms, 1)),
                new Text($"{o.Share:P1}"), new Text(Rate(o.Gflops)));
        context.Console.Write(top);
    }
}

using System.CommandLine;
using LatentDiffusion.Cli.Benchmarks;
using LatentDiffusion.Torch;
using Spectre.Console;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm bench …</c>: performance checks whose numbers go into the README.</summary>
internal static class BenchCommand
{
    public const int DefaultRepeat = 10;

    public static Command Create(CliContext context)
    {
        var bench = new Command("bench", "Benchmarks (see bench/README.md)");
        bench.Subcommands.Add(CreateOps(context));
        BenchModelsCommand.AddTo(bench, context);
        bench.Subcommands.Add(CreateTextToImage(context));
        bench.Subcommands.Add(BenchQualityCommand.Create(context));
        return bench;
    }

    /// <summary><c>ldm bench txt2img --engine torch|onnx</c>: a whole generation on a random-weight pipeline.</summary>
    private static Command CreateTextToImage(CliContext context)
    {
        Option<string> Config(string name, string file, string what) =>
            new Option<string>(name) { Description = what, DefaultValueFactory = _ => file }.ExistingFile().IsPath();
        var unet = Config("--unet-config", "configs/models/sd15-unet.json", "U-Net config");
        var vae = Config("--vae-config", "configs/models/sd15-vae.json", "VAE config");
        var text = Config("--text-config", "configs/models/sd15-text-encoder.json", "text encoder config");
        var scheduler = Config("--scheduler-config", "configs/models/sd15-scheduler.json", "scheduler config");
        var tokenizer = new Option<string?>("--tokenizer") { Description = "A CLIP tokenizer folder (default: the embedded model's)" }.IsPath();
        var size = new Option<int>("--size") { Description = "Image size in pixels", DefaultValueFactory = _ => 512 }.AtLeast(8);
        var steps = new Option<int>("--steps") { Description = "Denoising steps", DefaultValueFactory = _ => 20 }.AtLeast(1);
        var engine = new Option<string>("--engine") { Description = "torch, or onnx (the same weights exported to ONNX first)", DefaultValueFactory = _ => "torch" }.OneOf("torch", "onnx");
        var dtype = new Option<string>("--dtype") { Description = "f32, or bf16 (the U-Net and text encoder; the VAE stays f32 when its config asks: force_upcast)", DefaultValueFactory = _ => "f32" }.OneOf("f32", "bf16");
        var tiling = new Option<bool>("--vae-tiling") { Description = "Decode in overlapping tiles (diffusers' enable_vae_tiling)" };
        var model = new Option<string?>("--model") { Description = "Load this diffusers folder (e.g. one written by --save-model) instead of drawing random weights" }.IsPath();
        var saveModel = new Option<string?>("--save-model") { Description = $"Write the random-weight pipeline as a diffusers folder (float32 safetensors, with {PipelineBenchmark.RequestFile}: the prompt's token ids) and stop, timing nothing" }.IsPath();
        var saveOutput = new Option<string?>("--save-output") { Description = "Write the final latents and the image in [0, 1] to this .safetensors file" }.IsPath();
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of a line" };
        var command = new Command("txt2img", "A whole text-to-image generation (random SD1.5 weights, one timed run) on libtorch or ONNX Runtime: seconds, peak memory")
        {
            unet, vae, text, scheduler, tokenizer, size, steps, engine, dtype, tiling, model, saveModel, saveOutput, json,
        };
        command.SetAction((parsed, cancellationToken) =>
        {
            var configs = new PipelineBenchmark.Configs(parsed.GetValue(unet)!, parsed.GetValue(vae)!, parsed.GetValue(text)!, parsed.GetValue(scheduler)!,
                parsed.GetValue(tokenizer) ?? Path.Combine(Generation.DefaultModel.Resolve(null), "tokenizer"));
            if (parsed.GetValue(saveModel) is { } folder)
            {
                PipelineBenchmark.SaveModel(configs, folder);
                context.Out.WriteLine(parsed.GetValue(json) ? Json.Serialize(new { saved = folder }) : $"saved the random-weight pipeline to {folder}");
                return Task.FromResult(0);
            }
            var options = new PipelineBenchmark.Options(parsed.GetValue(size), parsed.GetValue(steps), parsed.GetValue(engine) == "onnx",
                parsed.GetValue(dtype) == "bf16" ? DType.BFloat16 : DType.Float32, parsed.GetValue(tiling), parsed.GetValue(model), parsed.GetValue(saveOutput));
            var r = PipelineBenchmark.TextToImage(configs, options, cancellationToken);
            context.Out.WriteLine(parsed.GetValue(json) ? Json.Serialize(r)
                : $"{r.Engine} {r.Dtype}: {r.Input}, {r.Steps} steps ({r.Scheduler}){(r.VaeTiling ? ", VAE tiling" : "")}: {r.Seconds} s, peak RSS {r.PeakRssMb} MB (generation {r.GenerationPeakRssMb} MB)");
            return Task.FromResult(0);
        });
        return command;
    }

    private static Command CreateOps(CliContext context)
    {
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of a table" };
        var repeat = new Option<int>("--repeat", "-n")
        {
            Description = "Timed runs per measurement (the median is reported)",
            DefaultValueFactory = _ => DefaultRepeat,
        }.AtLeast(1);
        var threads = new Option<int>("--threads")
        {
            Description = "Intra-op threads; 0 keeps the default (the number of cores, or OMP_NUM_THREADS)",
        }.AtLeast(0);
        var compare = new Option<bool>("--compare-wait-policy")
        {
            Description = "Run twice in child processes, OMP_WAIT_POLICY=PASSIVE (the binding's default) " +
                          "and LDTORCH_THREAD_POLICY=default, and show both",
        };

        var command = new Command("ops",
            "Binding overhead of a tiny op (µs), 1024² matmul and 3×3 conv GFLOP/s; compare with bench/torch_reference.py")
        {
            json, repeat, threads, compare,
        };
        command.SetAction(async (parsed, cancellationToken) =>
        {
            var n = parsed.GetValue(repeat);
            var threadCount = parsed.GetValue(threads);
            if (parsed.GetValue(compare))
            {
                var comparison = await WaitPolicyRunner.CompareAsync(n, threadCount, cancellationToken).ConfigureAwait(false);
                if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(comparison));
                else PrintComparison(context, comparison);
                return 0;
            }

            if (TorchRuntime.IsReferenceBlas) context.Warn(InfoCommand.ReferenceBlasWarning);
            var result = OpsBenchmark.Run(n, threadCount, cancellationToken);
            if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(result));
            else PrintResult(context, result);
            return 0;
        });
        return command;
    }

    private static void PrintResult(CliContext context, OpsResult r)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("measure").AddColumn(new TableColumn("value").RightAligned()).AddColumn("target");
        table.AddRow("op overhead (µs, a + b on 1 element)", F(r.OpOverheadUs, 2), "≤ 3 µs");
        table.AddRow($"matmul {OpsBenchmark.MatmulSize}² fp32 (GFLOP/s)", F(r.MatmulGflops, 1), "≥ 0.95× PyTorch");
        table.AddRow("conv 3×3 128→128, 4×128×64×64 (GFLOP/s)", F(r.ConvGflops, 1), "≥ 0.95× PyTorch");
        context.Console.Write(table);
        context.Out.WriteLine($"libtorch {r.Libtorch}, {r.Threads} threads, OMP_WAIT_POLICY {r.OmpWaitPolicy}, median of {r.Repeat} runs");
        context.Out.WriteLine($"BLAS: {r.Blas}");
    }

    private static void PrintComparison(CliContext context, WaitPolicyComparison c)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("measure")
            .AddColumn(new TableColumn("PASSIVE").RightAligned())
            .AddColumn(new TableColumn("libgomp default").RightAligned())
            .AddColumn(new TableColumn("PASSIVE / default").RightAligned());
        table.AddRow("op overhead (µs)", F(c.Passive.OpOverheadUs, 2), F(c.Default.OpOverheadUs, 2), Ratio(c.Passive.OpOverheadUs, c.Default.OpOverheadUs));
        table.AddRow("matmul (GFLOP/s)", F(c.Passive.MatmulGflops, 1), F(c.Default.MatmulGflops, 1), Ratio(c.Passive.MatmulGflops, c.Default.MatmulGflops));
        table.AddRow("conv (GFLOP/s)", F(c.Passive.ConvGflops, 1), F(c.Default.ConvGflops, 1), Ratio(c.Passive.ConvGflops, c.Default.ConvGflops));
        context.Console.Write(table);
        context.Out.WriteLine("PASSIVE: OMP_WAIT_POLICY=PASSIVE, set by the binding (ldm's default)");
        context.Out.WriteLine("libgomp default: LDTORCH_THREAD_POLICY=default, OMP_WAIT_POLICY unset (threads spin before sleeping)");
        context.Out.WriteLine($"libtorch {c.Passive.Libtorch}, {c.Passive.Threads} threads, median of {c.Passive.Repeat} runs, one child process each");
        context.Out.WriteLine($"BLAS: {c.Passive.Blas}");
    }

    private static string F(double value, int decimals) => value.ToString("F" + decimals, System.Globalization.CultureInfo.InvariantCulture);

    private static string Ratio(double a, double b) => b > 0 ? (a / b).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + "×" : "-";
}

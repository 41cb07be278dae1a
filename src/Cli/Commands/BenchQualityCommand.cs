using System.CommandLine;
using LatentDiffusion.Cli.Benchmarks;
using LatentDiffusion.Cli.Generation;
using Spectre.Console;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm bench quality</c>: the same generations in f32 and in bf16 (or f16), compared in 8-bit pixels (issue 19).</summary>
internal static class BenchQualityCommand
{
    public static readonly string[] DefaultPrompts = ["a red sneaker", "a photo of a blue bag"];
    public static readonly string[] DefaultSamplers = ["euler", "euler_a"];

    public static Command Create(CliContext context)
    {
        var model = new Option<string?>("--model", "-m") { Description = "A diffusers model folder or single-file checkpoint (default: the embedded model)" }.IsPath();
        var dtype = new Option<string>("--dtype") { Description = "The dtype compared with f32: bf16, f16 (needs --device cuda), auto, or f32 (the run's reproducibility: 0)", DefaultValueFactory = _ => "bf16" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var prompts = new Option<string[]>("--prompt", "-p") { Description = $"A prompt; repeatable (default: {string.Join(", ", DefaultPrompts.Select(p => $"\"{p}\""))})", Arity = ArgumentArity.ZeroOrMore };
        var samplers = new Option<string[]>("--sampler", "-s") { Description = $"A sampler; repeatable (default: {string.Join(", ", DefaultSamplers)}: one deterministic, one ancestral)", Arity = ArgumentArity.ZeroOrMore };
        var seeds = new Option<int>("--seeds") { Description = "Seeds 1 … N for every prompt and sampler", DefaultValueFactory = _ => 3 }.AtLeast(1);
        var steps = new Option<int?>("--steps") { Description = "Denoising steps (default 30)" }.AtLeast(1);
        var guidance = new Option<double>("--guidance", "--cfg") { Description = "Classifier-free guidance scale", DefaultValueFactory = _ => 7.5 }.InRange(Ranges.Guidance);
        var size = new Option<int?>("--size") { Description = "Width and height in pixels (default: the model's)" }.AtLeast(8);
        var mode = new Option<string>("--mode") { Description = "txt2img, img2img (from the f32 txt2img image of the same seed) or both", DefaultValueFactory = _ => "both" }.OneOf("txt2img", "img2img", "both");
        var strength = new Option<double>("--strength") { Description = "img2img strength", DefaultValueFactory = _ => 0.6 }.InRange(Ranges.Strength);
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of a table" };
        var command = new Command("quality",
            "The same requests generated in f32 and in --dtype, compared per image in 8-bit pixels: max and mean |difference| (levels), PSNR, share of values off by more than 2 levels")
        {
            model, dtype, device, prompts, samplers, seeds, steps, guidance, size, mode, strength, json,
        };
        command.ChecksDevice(device, dtype);
        command.SetAction((parsed, cancellationToken) =>
        {
            var deviceValue = Torch.Device.Parse(parsed.GetValue(device)!);
            var which = parsed.GetValue(mode)!;
            var options = new QualityOptions
            {
                Model = DefaultModel.Resolve(parsed.GetValue(model)),
                DType = DeviceOptions.ParseDType(parsed.GetValue(dtype)!, deviceValue),
                Device = deviceValue,
                Prompts = parsed.GetValue(prompts) is { Length: > 0 } p ? p : DefaultPrompts,
                Samplers = parsed.GetValue(samplers) is { Length: > 0 } s ? s : DefaultSamplers,
                Seeds = Enumerable.Range(1, parsed.GetValue(seeds)).Select(i => (ulong)i).ToArray(),
                Steps = parsed.GetValue(steps),
                Guidance = parsed.GetValue(guidance),
                Size = parsed.GetValue(size),
                TextToImage = which != "img2img",
                ImageToImage = which != "txt2img",
                Strength = parsed.GetValue(strength),
            };
            var result = ProgressDisplay.Run(context, "comparing", display =>
                QualityBenchmark.Run(options, display.Sink<QualityProgress>(q => new ProgressUpdate(q.Done, q.Total, $"{q.Done}/{q.Total}: {q.Next}", q.Next)), cancellationToken), clearWhenDone: true);
            if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(result));
            else Print(context, result);
            return Task.FromResult(0);
        });
        return command;
    }

    private static void Print(CliContext context, QualityResult r)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumn("mode").AddColumn("sampler").AddColumn(new TableColumn("seed").RightAligned())
            .AddColumn(new TableColumn("prompt").RightAligned()).AddColumn(new TableColumn("max |Δ|").RightAligned()).AddColumn(new TableColumn("mean |Δ|").RightAligned())
            .AddColumn(new TableColumn("PSNR dB").RightAligned()).AddColumn(new TableColumn("> 2 levels").RightAligned())
            .AddColumn(new TableColumn("latents max |Δ|").RightAligned());
        // The prompts by number (a long prompt would squeeze the table): the legend follows it.
        var prompts = r.Images.Select(c => c.Prompt).Distinct().ToList();
        foreach (var c in r.Images)
            table.AddRow(Cells(c.Mode, c.Sampler, c.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture), $"#{prompts.IndexOf(c.Prompt) + 1}", c.Pixels, c.LatentsMaxAbsDiff));
        table.AddRow(Cells("all", "", "", $"{r.Images.Count} images", r.Overall, r.LatentsMaxAbsDiff));
        context.Console.Write(table);
        for (int i = 0; i < prompts.Count; i++) context.Out.WriteLine($"prompt #{i + 1}: {prompts[i]}");
        context.Out.WriteLine($"{r.Model}: f32 against {r.Dtype} on {r.Device}, {r.Width}×{r.Height}, {r.Steps} steps, guidance {CommandSupport.F(r.Guidance, 1)}, "
            + $"img2img strength {CommandSupport.F(r.Strength, 2)}; libtorch {r.Libtorch}");
    }

    private static Text[] Cells(string mode, string sampler, string seed, string prompt, ImageDifference d, double latents) =>
    [
        new(mode), new(sampler), new(seed), new(prompt), new(d.MaxLevels.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new(CommandSupport.F(d.MeanAbsLevels, 3)), new(d.PsnrDb is { } psnr ? CommandSupport.F(psnr, 1) : "∞"),
        new(CommandSupport.F(100 * d.FractionOver2Levels, 2) + "%"), new(latents.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)),
    ];
}

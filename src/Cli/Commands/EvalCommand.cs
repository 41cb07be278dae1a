using System.CommandLine;
using LatentDiffusion.Pipeline;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.Schedulers;
using LatentDiffusion.Cli.Generation;
using LatentDiffusion.Training.Evaluation;
using LatentDiffusion.Training.Ldm;
using Spectre.Console;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm eval …</c>: sample quality measured by the shipped judges (models/judges, or $LDM_JUDGES).</summary>
internal static class EvalCommand
{
    public static Command Create(CliContext context)
    {
        var eval = new Command("eval", "Judge a trained model's samples (FID and adherence, with the judges in models/judges)");
        eval.Subcommands.Add(CreateDdpm(context));
        eval.Subcommands.Add(CreatePrompts(context));
        return eval;
    }

    private static Option<string?> JudgeOption(string what) => new("--judge") { Description = $"Judge folder; default: {what} under models/judges or $LDM_JUDGES" };

    private static Command CreateDdpm(CliContext context)
    {
        var model = new Option<string>("--model", "-m") { Description = "DDPMPipeline folder of a Fashion-MNIST model", Required = true }.IsPath();
        var samples = new Option<int>("--samples", "-n") { Description = "Images to draw and judge", DefaultValueFactory = _ => 1000 }.AtLeast(2);
        var seed = new Option<ulong>("--seed", "-s") { Description = "Seed of the noise", DefaultValueFactory = _ => 0 };
        var scheduler = new Option<string>("--scheduler") { Description = "ddpm or ddim; default: the model's own scheduler" }.OneOf("ddpm", "ddim");
        var steps = new Option<int?>("--steps") { Description = "Denoising steps; default: 1000 (DDPM), 50 (DDIM)" };
        steps.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1) r.AddError("--steps must be at least 1"); });
        var batch = new Option<int>("--batch-size") { Description = "Images sampled at once", DefaultValueFactory = _ => 100 }.AtLeast(1);
        var judgeDir = JudgeOption(Judge.FashionClassifierName);
        var json = new Option<bool>("--json") { Description = "Print a JSON object {fid, class_histogram, samples}" };
        var command = new Command("ddpm", "FID (classifier features) and class histogram of a pixel DDPM's samples")
        {
            model, samples, seed, scheduler, steps, batch, judgeDir, json,
        };
        command.SetAction((parsed, cancellationToken) =>
        {
            using var pipeline = SampleCommand.Load(parsed.GetValue(model)!, parsed.GetValue(scheduler));
            using var judge = Judge.LoadFashionClassifier(parsed.GetValue(judgeDir));
            var stepCount = parsed.GetValue(steps) ?? (pipeline.Scheduler is DDIMScheduler ? 50 : 1000);
            using var noise = new GeneratorNoise(parsed.GetValue(seed));
            var total = parsed.GetValue(samples);
            var result = ProgressDisplay.Run(context, "eval ddpm", display => DdpmEvaluation.Evaluate(
                n =>
                {
                    using var images = pipeline.Generate(new DdpmOptions(BatchSize: n, Steps: stepCount), noise, null, cancellationToken);
                    return Judge.FromPipelineImages(images);
                },
                total, judge, parsed.GetValue(batch), display.Sink<EvaluationProgress>(ProgressText.Of), cancellationToken));
            if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(result));
            else
            {
                var table = new Table().Border(TableBorder.Rounded).AddColumn("class").AddColumn(new TableColumn("samples").RightAligned());
                foreach (var (name, count) in result.ClassHistogram) table.AddRow(Markup.Escape(name), count.ToString(System.Globalization.CultureInfo.InvariantCulture));
                context.Console.Write(table);
                context.Out.WriteLine($"FID {CommandSupport.F(result.Fid, 2)} over {result.Samples} samples ({judge.Directory})");
            }
            return Task.FromResult(0);
        });
        return command;
    }

    private static Command CreatePrompts(CliContext context)
    {
        var model = new Option<string>("--model", "-m") { Description = "Stable Diffusion folder trained on Fashion colours", Required = true }.IsPath();
        var perPrompt = new Option<int>("--samples-per-prompt", "-n") { Description = "Images per prompt", DefaultValueFactory = _ => 4 }.AtLeast(1);
        var steps = new Option<int?>("--steps") { Description = "Denoising steps; default: the pipeline's (30)" };
        steps.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1) r.AddError("--steps must be at least 1"); });
        var guidance = new Option<double?>("--guidance", "-g") { Description = "Classifier-free guidance scale; default: the pipeline's (7.5)" }.InRange(Ranges.Guidance);
        var seed = new Option<ulong>("--seed", "-s") { Description = "Seed; prompt i uses seed + i·n", DefaultValueFactory = _ => 0 };
        // the pipeline checks that the size is a multiple of the model's VAE factor (4 for the embedded model)
        var size = new Option<int?>("--size") { Description = "Image width and height (a multiple of the model's VAE factor; the judge needs 32); default: the model's" };
        size.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1 and var v) r.AddError($"--size must be positive, got {v}"); });
        var judgeDir = JudgeOption(Judge.FashionColoursJudgeName);
        var json = new Option<bool>("--json") { Description = "Print a JSON object (adherences, fid, per-prompt results)" };
        var colour = new Option<string>("--colour") { Description = "Judge only the ten prompts of this colour, e.g. a new word a LoRA taught: magenta (named by its measured tint)" }
            .OneOf([.. TintJudge.FullPalette.Select(c => c.Name)]);
        var adapters = new AdapterOptions();
        var command = new Command("prompts", "Class, colour and held-out adherence and FID of a text-to-image model over every class × colour prompt")
        {
            model, perPrompt, steps, guidance, seed, size, judgeDir, json, colour, adapters.Lora,
        };
        command.SetAction((parsed, cancellationToken) =>
        {
            var request = new LdmEvaluationRequest
            {
                SamplesPerPrompt = parsed.GetValue(perPrompt),
                Steps = parsed.GetValue(steps),
                GuidanceScale = parsed.GetValue(guidance),
                Size = parsed.GetValue(size),
                Seed = parsed.GetValue(seed),
                Colour = parsed.GetValue(colour),
                Loras = adapters.Parse(parsed).Loras,
            };
            var directory = parsed.GetValue(model)!;
            using var judge = Judge.LoadFashionColoursJudge(parsed.GetValue(judgeDir));
            var result = ProgressDisplay.Run(context, "eval prompts", display => LdmEvaluation.Run(directory, request, judge,
                display.Sink<EvaluationProgress>(ProgressText.Of), cancellationToken));
            if (parsed.GetValue(json)) context.Out.WriteLine(Json.Serialize(result));
            else
            {
                var table = new Table().Border(TableBorder.Rounded).AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
                static string P(double? v) => v is { } x ? CommandSupport.F(x, 3) : "–";
                table.AddRow("class adherence", P(result.ClassAdherence));
                table.AddRow("colour adherence", P(result.ColourAdherence));
                table.AddRow("held-out adherence (class and colour)", P(result.HeldOutAdherence));
                table.AddRow("seen adherence (class and colour)", P(result.SeenAdherence));
                table.AddRow("FID (judge features)", CommandSupport.F(result.Fid, 2));
                table.AddRow("samples", result.Samples.ToString(System.Globalization.CultureInfo.InvariantCulture));
                table.AddRow("sampler, steps, guidance", $"{result.Sampler}, {result.Steps}, {CommandSupport.F(result.GuidanceScale, 2)}");
                context.Console.Write(table);
            }
            return Task.FromResult(0);
        });
        return command;
    }
}

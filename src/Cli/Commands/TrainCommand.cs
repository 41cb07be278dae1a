using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Training.Ddpm;
using LatentDiffusion.Training.Evaluation;
using LatentDiffusion.Training.Ldm;
using LatentDiffusion.Training.Lora;
using LatentDiffusion.Training.Vae;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm train …</c>: the training recipes (progress display, Ctrl+C checkpoints, resumable) and the judges.</summary>
internal static class TrainCommand
{
    public static Command Create(CliContext context)
    {
        var train = new Command("train", "Train a model from a recipe in configs/train/ (Ctrl+C writes a checkpoint; --resume continues)");
        train.Subcommands.Add(CreateRecipe(context, "ddpm", "Train a pixel DDPM (e.g. configs/train/ddpm-fashion-unet2d.json)", TrainDdpm));
        train.Subcommands.Add(CreateRecipe(context, "vae", "Train an AutoencoderKL (e.g. configs/train/vae-fashion-colours.json); reports test PSNR", TrainVae));
        train.Subcommands.Add(CreateRecipe(context, "ldm", "Train a text-to-image model: tokenizer, text encoder and U-Net on VAE latents (e.g. configs/train/ldm-fashion-colours.json)", TrainLdm));
        train.Subcommands.Add(CreateRecipe(context, "lora", "Fine-tune LoRA adapters of a Stable Diffusion model on a kohya-style captioned folder; writes model/NAME.safetensors for --lora", TrainLora,
            LoraBucketOptions.Overrides));
        train.Subcommands.Add(CreateJudges(context));
        return train;
    }

    /// <summary>
    /// Runs one recipe: (context, recipe path, run folder, resume, data-parallel group or null, the command line for the
    /// command's recipe overrides, cancellation) → exit code.
    /// </summary>
    private delegate int RecipeRun(CliContext context, string recipePath, string outputDirectory, bool resume, ProcessGroup? group,
        ParseResult parsed, CancellationToken cancellationToken);

    /// <summary>
    /// <c>ldm train NAME --config FILE --out DIR [--resume] [--nproc N]</c>. With --nproc N, starts N data-parallel
    /// ranks on this machine (<see cref="DataParallelLauncher"/>); with torchrun's WORLD_SIZE (and RANK, MASTER_ADDR,
    /// MASTER_PORT) in the environment, runs as that rank of a job started elsewhere (several machines).
    /// </summary>
    private static Command CreateRecipe(CliContext context, string name, string description, RecipeRun run, RecipeOverrides? overrides = null)
    {
        var config = new Option<string>("--config", "-c") { Description = "Training recipe (JSON)", Required = true }.ExistingFile().IsPath();
        var output = new Option<string>("--out", "-o") { Description = "Run folder: checkpoints, metrics, samples, the trained model", Required = true }.IsPath();
        var resume = new Option<bool>("--resume") { Description = "Continue from the run folder's last checkpoint" };
        var nproc = new Option<int>("--nproc")
        {
            Description = "Data-parallel ranks to start on this machine, each with its share of the cores (training.batch_size is the global batch)",
            DefaultValueFactory = _ => 1,
        }.AtLeast(1);
        var command = new Command(name, description) { config, output, resume, nproc };
        foreach (var option in overrides?.Options ?? []) command.Options.Add(option);
        command.SetAction((parsed, cancellationToken) =>
        {
            string recipe = parsed.GetValue(config)!, folder = parsed.GetValue(output)!;
            var again = parsed.GetValue(resume);
            var n = parsed.GetValue(nproc);
            if (n > Environment.ProcessorCount * 4)
                throw new UsageException($"--nproc {n} is more than 4 ranks per core of this machine ({Environment.ProcessorCount} cores)");
            if (n > 1)
                return Task.FromResult(DataParallelLauncher.Run(context,
                    ["train", name, "--config", recipe, "--out", folder, .. again ? new[] { "--resume" } : [], .. overrides?.Forward(parsed) ?? []], n));
            using var session = DistributedEnvironment.FromEnvironment()?.Connect();
            return Task.FromResult(run(context, recipe, folder, again, session?.Group, parsed, cancellationToken));
        });
        return command;
    }

    private static string Title(string kind, string recipePath) => $"{kind} {Path.GetFileNameWithoutExtension(recipePath)}";

    private static int TrainDdpm(CliContext context, string recipePath, string outputDirectory, bool resume, ProcessGroup? group, ParseResult parsed, CancellationToken cancellationToken)
    {
        var recipe = DdpmRecipe.Load(recipePath);
        return TrainingRun.Run(context, Title("ddpm", recipePath), outputDirectory, cancellationToken,
            (progress, token) => DdpmTraining.Run(recipe, outputDirectory, resume, progress, token, group), result => result);
    }

    /// <summary>Trains the AutoencoderKL, exports it with the measured scaling factor, and prints the test-split reconstruction PSNR.</summary>
    private static int TrainVae(CliContext context, string recipePath, string outputDirectory, bool resume, ProcessGroup? group, ParseResult parsed, CancellationToken cancellationToken)
    {
        var recipe = VaeRecipe.Load(recipePath);
        return TrainingRun.Run(context, Title("vae", recipePath), outputDirectory, cancellationToken,
            (progress, token) => VaeTraining.Run(recipe, outputDirectory, resume, progress, token, group), result => result.Training, result =>
            {
                if (result.Evaluation is { } e)
                    context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"test PSNR {e.PsnrDb:F2} dB over {e.TestImages} images; scaling_factor {e.ScalingFactor:G5}; {Path.Combine(outputDirectory, VaeTraining.EvaluationFile)}"));
            });
    }

    /// <summary>Learns the tokenizer, trains the text encoder and conditional U-Net on the frozen VAE's latents, and exports the diffusers pipeline folder.</summary>
    private static int TrainLdm(CliContext context, string recipePath, string outputDirectory, bool resume, ProcessGroup? group, ParseResult parsed, CancellationToken cancellationToken)
    {
        var recipe = LdmRecipe.Load(recipePath);
        return TrainingRun.Run(context, Title("ldm", recipePath), outputDirectory, cancellationToken,
            (progress, token) => LdmTraining.Run(recipe, outputDirectory, resume, progress, token, group), result => result);
    }

    /// <summary>Trains LoRA adapters on the frozen model and writes the kohya-format file.</summary>
    private static int TrainLora(CliContext context, string recipePath, string outputDirectory, bool resume, ProcessGroup? group, ParseResult parsed, CancellationToken cancellationToken)
    {
        var recipe = LoraBucketOptions.Apply(LoraRecipe.Load(recipePath), parsed);
        return TrainingRun.Run(context, Title("lora", recipePath), outputDirectory, cancellationToken,
            (progress, token) => LoraTraining.Run(recipe, outputDirectory, resume, progress, token, group), result => result);
    }

    private static Command CreateJudges(CliContext context)
    {
        var output = new Option<string>("--out", "-o")
        {
            Description = "Folder that receives fashion-classifier/ and fashion-colours-judge/",
            DefaultValueFactory = _ => Path.Combine("models", "judges"),
        }.IsPath();
        var which = new Argument<string>("which")
        {
            Description = "all, classifier (Fashion-MNIST) or judge (Fashion colours)",
            DefaultValueFactory = _ => "all",
        };
        which.AcceptOnlyFromAmong("all", "classifier", "judge");
        var command = new Command("judges", "Train the evaluation judges from scratch (needs Fashion-MNIST; see configs/eval/README.md)") { which, output };
        command.SetAction((parsed, cancellationToken) =>
        {
            var root = parsed.GetValue(output)!;
            var choice = parsed.GetValue(which)!;
            var reports = ProgressDisplay.Run(context, "judges", display =>
            {
                IProgress<ClassifierTrainingProgress> For(string judge) => display.Sink<ClassifierTrainingProgress>(p => ProgressText.Of(p, judge));
                return choice switch
                {
                    "classifier" => [JudgeTraining.TrainFashionClassifier(Path.Combine(root, Judge.FashionClassifierName), null, For(Judge.FashionClassifierName), cancellationToken)],
                    "judge" => [JudgeTraining.TrainFashionColoursJudge(Path.Combine(root, Judge.FashionColoursJudgeName), null, null, For(Judge.FashionColoursJudgeName), cancellationToken)],
                    _ => JudgeTraining.TrainJudges(root, display.Sink<JudgeTrainingProgress>(ProgressText.Of), cancellationToken),
                };
            });
            foreach (var r in reports)
            {
                var colour = r.ColourAccuracy is { } c ? $", colour accuracy {CommandSupport.F(c, 4)}" : "";
                context.Out.WriteLine($"{r.Model}: class accuracy {CommandSupport.F(r.ClassAccuracy, 4)}{colour} on {r.TestImages} test images; wrote {Path.Combine(root, r.Model)}");
            }
            return Task.FromResult(0);
        });
        return command;
    }
}

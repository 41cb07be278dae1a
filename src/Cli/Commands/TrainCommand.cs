using System.CommandLine;
using LatentDiffusion.Training;
using LatentDiffusion.Training.Evaluation;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm train …</c>: the training recipes (progress bar, Ctrl+C checkpoints, resumable).</summary>
internal static class TrainCommand
{
    public static Command Create(CliContext context)
    {
        var train = new Command("train", "Train a model from a recipe in configs/train/ (Ctrl+C writes a checkpoint; --resume continues)");
        train.Subcommands.Add(CreateRecipe(context, "ddpm", "Train a pixel DDPM (e.g. configs/train/ddpm-fashion-unet2d.json)", TrainingCommands.TrainDdpm));
        train.Subcommands.Add(CreateRecipe(context, "vae", "Train an AutoencoderKL (e.g. configs/train/vae-fashion-colours.json); reports test PSNR", TrainingCommands.TrainVae));
        train.Subcommands.Add(CreateRecipe(context, "ldm", "Train a text-to-image model: tokenizer, text encoder and U-Net on VAE latents (e.g. configs/train/ldm-fashion-colours.json)", TrainingCommands.TrainLdm));
        train.Subcommands.Add(CreateJudges(context));
        return train;
    }

    /// <summary><c>ldm train NAME --config FILE --out DIR [--resume]</c> over one of <see cref="TrainingCommands"/>.</summary>
    internal static Command CreateRecipe(CliContext context, string name, string description, Func<string, string, bool, TextWriter, int> run)
    {
        var config = new Option<string>("--config", "-c") { Description = "Training recipe (JSON)", Required = true }.ExistingFile();
        var output = new Option<string>("--out", "-o") { Description = "Run folder: checkpoints, metrics, samples, the trained model", Required = true };
        var resume = new Option<bool>("--resume") { Description = "Continue from the run folder's last checkpoint" };
        var command = new Command(name, description) { config, output, resume };
        command.SetAction(parsed => run(parsed.GetValue(config)!, parsed.GetValue(output)!, parsed.GetValue(resume), context.Out));
        return command;
    }

    private static Command CreateJudges(CliContext context)
    {
        var output = new Option<string>("--out", "-o")
        {
            Description = "Folder that receives fashion-classifier/ and fashion-colours-judge/",
            DefaultValueFactory = _ => Path.Combine("models", "judges"),
        };
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
            var reports = CommandSupport.WithProgress(context, "judges", report =>
            {
                IProgress<ClassifierTrainingProgress> For(string judge) => new CommandSupport.SyncProgress<ClassifierTrainingProgress>(p =>
                    report(p.Step, p.TotalSteps, $"{judge} epoch {p.Epoch} loss {CommandSupport.F(p.Loss, 4)}"));
                if (choice == "all")
                    return JudgeTraining.TrainJudges(root, new CommandSupport.SyncProgress<JudgeTrainingProgress>(p =>
                        report(p.Step.Step, p.Step.TotalSteps, $"{p.Judge} epoch {p.Step.Epoch} loss {CommandSupport.F(p.Step.Loss, 4)}")), cancellationToken);
                var list = new List<JudgeReport>();
                if (choice == "classifier")
                    list.Add(JudgeTraining.TrainFashionClassifier(Path.Combine(root, Judge.FashionClassifierName), null, For(Judge.FashionClassifierName), cancellationToken));
                if (choice == "judge")
                    list.Add(JudgeTraining.TrainFashionColoursJudge(Path.Combine(root, Judge.FashionColoursJudgeName), null, null, For(Judge.FashionColoursJudgeName), cancellationToken));
                return (IReadOnlyList<JudgeReport>)list;
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

using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Training.Toy;

namespace LatentDiffusion.Cli.Commands;

/// <summary><c>ldm toy s-curve</c>: diffusion on 2-D points, trained in a minute on a CPU.</summary>
internal static class ToyCommand
{
    public static Command Create(CliContext context)
    {
        var toy = new Command("toy", "Toy diffusion problems that train in minutes on a CPU");
        var config = new Option<string>("--config", "-c") { Description = "Toy recipe (JSON, e.g. configs/train/toy-s-curve.json); default: the built-in recipe" }.ExistingFile().IsPath();
        var output = new Option<string>("--out", "-o") { Description = "Run folder: checkpoints, metrics, pictures", Required = true }.IsPath();
        var resume = new Option<bool>("--resume") { Description = "Continue from the run folder's last checkpoint" };
        var sCurve = new Command("s-curve", "Train a small MLP to generate points on an S curve; writes pictures of the data, the samples and the reverse process")
        {
            config, output, resume,
        };
        sCurve.SetAction((parsed, cancellationToken) => Task.FromResult(
            SCurve(context, parsed.GetValue(config), parsed.GetValue(output)!, parsed.GetValue(resume), cancellationToken)));
        toy.Subcommands.Add(sCurve);
        return toy;
    }

    /// <summary>Trains the toy, writes its pictures, reports sample quality.</summary>
    private static int SCurve(CliContext context, string? recipePath, string outputDirectory, bool resume, CancellationToken cancellationToken)
    {
        var recipe = recipePath is null ? new ToyRecipe() : ToyRecipe.Load(recipePath);
        return TrainingRun.Run(context, "toy s-curve", outputDirectory, cancellationToken,
            (progress, token) => ToyTraining.Run(recipe, outputDirectory, resume, progress, token), outcome => outcome.Training, outcome =>
            {
                context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"samples lie {outcome.MeanNearestDistance:F4} from the nearest data point on average (pure noise: {outcome.NoiseMeanNearestDistance:F4})"));
                foreach (var image in outcome.Images) context.Out.WriteLine($"wrote {image}");
            });
    }
}

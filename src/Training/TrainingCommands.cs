using System.Globalization;
using LatentDiffusion.Training.Ddpm;
using LatentDiffusion.Training.Ldm;
using LatentDiffusion.Training.Toy;
using LatentDiffusion.Training.Vae;

namespace LatentDiffusion.Training;

/// <summary>
/// The training commands of the <c>ldm</c> CLI, ready to call from a command handler: progress bar
/// or plain lines, Ctrl+C that checkpoints before stopping, a summary, and the exit code
/// (0 done, 130 stopped by Ctrl+C, as shells report SIGINT). Recipe and dataset errors propagate as
/// <see cref="Recipes.RecipeException"/> / <see cref="Data.DatasetException"/> for the CLI's one-line error.
/// </summary>
public static class TrainingCommands
{
    public const int Cancelled = 130;

    /// <summary><c>ldm train ddpm RECIPE OUT [--resume]</c>.</summary>
    public static int TrainDdpm(string recipePath, string outputDirectory, bool resume, TextWriter output)
    {
        var recipe = DdpmRecipe.Load(recipePath);
        using var ctrlC = new CtrlCCancellation(output);
        var result = TrainingConsole.Run($"ddpm {Path.GetFileNameWithoutExtension(recipePath)}",
            p => DdpmTraining.Run(recipe, outputDirectory, resume, p, ctrlC.Token));
        return Summarize(result, outputDirectory, output);
    }

    /// <summary>
    /// <c>ldm train vae --config RECIPE --out OUT [--resume]</c>: trains the AutoencoderKL, exports it with
    /// the measured scaling factor, and prints the test-split reconstruction PSNR.
    /// </summary>
    public static int TrainVae(string recipePath, string outputDirectory, bool resume, TextWriter output)
    {
        var recipe = VaeRecipe.Load(recipePath);
        using var ctrlC = new CtrlCCancellation(output);
        var result = TrainingConsole.Run($"vae {Path.GetFileNameWithoutExtension(recipePath)}",
            p => VaeTraining.Run(recipe, outputDirectory, resume, p, ctrlC.Token));
        var code = Summarize(result.Training, outputDirectory, output);
        if (code == 0 && result.Evaluation is { } e)
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"test PSNR {e.PsnrDb:F2} dB over {e.TestImages} images; scaling_factor {e.ScalingFactor:G5}; {Path.Combine(outputDirectory, VaeTraining.EvaluationFile)}"));
        return code;
    }

    /// <summary>
    /// <c>ldm train ldm --config RECIPE --out OUT [--resume]</c>: learns the tokenizer, trains the text
    /// encoder and conditional U-Net on the frozen VAE's latents, and exports the diffusers pipeline folder.
    /// </summary>
    public static int TrainLdm(string recipePath, string outputDirectory, bool resume, TextWriter output)
    {
        var recipe = LdmRecipe.Load(recipePath);
        using var ctrlC = new CtrlCCancellation(output);
        var result = TrainingConsole.Run($"ldm {Path.GetFileNameWithoutExtension(recipePath)}",
            p => LdmTraining.Run(recipe, outputDirectory, resume, p, ctrlC.Token));
        return Summarize(result, outputDirectory, output);
    }

    /// <summary><c>ldm toy s-curve OUT [--recipe FILE] [--resume]</c>: trains the toy, writes its pictures, reports sample quality.</summary>
    public static int ToySCurve(string? recipePath, string outputDirectory, bool resume, TextWriter output)
    {
        var recipe = recipePath is null ? new ToyRecipe() : ToyRecipe.Load(recipePath);
        using var ctrlC = new CtrlCCancellation(output);
        var outcome = TrainingConsole.Run("toy s-curve", p => ToyTraining.Run(recipe, outputDirectory, resume, p, ctrlC.Token));
        var code = Summarize(outcome.Training, outputDirectory, output);
        if (code == 0)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"samples lie {outcome.MeanNearestDistance:F4} from the nearest data point on average (pure noise: {outcome.NoiseMeanNearestDistance:F4})"));
            foreach (var image in outcome.Images) output.WriteLine($"wrote {image}");
        }
        return code;
    }

    private static int Summarize(TrainingResult result, string outputDirectory, TextWriter output)
    {
        var speed = result.StepsPerSecond.ToString("F2", CultureInfo.InvariantCulture);
        if (result.Cancelled)
        {
            output.WriteLine($"stopped at step {result.Step} ({speed} it/s); checkpoint written: resume with --resume into {outputDirectory}");
            return Cancelled;
        }
        var from = result.ResumedFrom is { } r ? $" (resumed from step {r})" : "";
        output.WriteLine($"trained {result.Step} steps{from} at {speed} it/s; model: {result.ModelDirectory}");
        return 0;
    }
}

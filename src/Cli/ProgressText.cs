using System.Globalization;
using LatentDiffusion.Pipeline;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Training;
using LatentDiffusion.Training.Evaluation;

namespace LatentDiffusion.Cli;

/// <summary>How <see cref="ProgressDisplay"/> words the progress records of the libraries.</summary>
public static class ProgressText
{
    /// <summary>
    /// A training step: "step 1200/20000 · loss 0.0412 · d_loss 0.9871 · lr 1.00e-04 · 5.20 it/s" (the display
    /// adds the trainer's ETA), on the bar only the task's first metric; an event: "step 500 · checkpoint step-000500".
    /// </summary>
    public static ProgressUpdate Of(TrainingProgress p)
    {
        if (p.Event is { } e) return new ProgressUpdate(p.Step, p.MaxSteps, $"step {p.Step} · {e}", IsEvent: true);
        var loss = double.IsNaN(p.Loss) ? "–" : p.Loss.ToString("F4", CultureInfo.InvariantCulture);
        var speed = p.StepsPerSecond.ToString("F2", CultureInfo.InvariantCulture);
        var metrics = (p.Metrics ?? []).Select(Metric).ToList();
        List<string> parts = [$"step {p.Step}/{p.MaxSteps}", $"loss {loss}", .. metrics,
            string.Create(CultureInfo.InvariantCulture, $"lr {p.LearningRate:0.00e+00}"), $"{speed} it/s"];
        var text = string.Join(" · ", parts);
        var first = metrics.Count > 0 ? " " + metrics[0] : "";
        return new ProgressUpdate(p.Step, p.MaxSteps, text, $"{p.Step}/{p.MaxSteps} loss {loss}{first} {speed} it/s", p.Remaining);
    }

    /// <summary>A judge's training step: "fashion-classifier step 120/1876 · epoch 1 · loss 0.4121".</summary>
    public static ProgressUpdate Of(JudgeTrainingProgress p) => Of(p.Step, p.Judge);

    /// <summary>A classifier's training step: "<paramref name="judge"/> step 120/1876 · epoch 1 · loss 0.4121".</summary>
    public static ProgressUpdate Of(ClassifierTrainingProgress p, string judge) => new(p.Step, p.TotalSteps,
        string.Create(CultureInfo.InvariantCulture, $"{judge} step {p.Step}/{p.TotalSteps} · epoch {p.Epoch} · loss {p.Loss:F4}"));

    /// <summary>Samples drawn and judged: "400/1000 images".</summary>
    public static ProgressUpdate Of(EvaluationProgress p) => new(p.Done, p.Total, $"{p.Done}/{p.Total} images");

    /// <summary>A pixel DDPM's denoising step: "step 20/1000".</summary>
    public static ProgressUpdate Of(DdpmProgress p) => new(p.Step, p.TotalSteps, $"step {p.Step}/{p.TotalSteps}");

    /// <summary>A Stable Diffusion denoising step: "step 12/30 (t=601)".</summary>
    public static ProgressUpdate Of(GenerationProgress p) => new(p.Step, p.TotalSteps,
        string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} (t={p.Timestep:0.#})"), $"{p.Step}/{p.TotalSteps}");

    private static string Metric(KeyValuePair<string, double> m) => string.Create(CultureInfo.InvariantCulture, $"{m.Key} {m.Value:G4}");
}

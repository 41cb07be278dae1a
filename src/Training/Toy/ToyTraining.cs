using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Toy;

/// <summary>What a toy run produced: the training result, the frames of both processes and the sample quality.</summary>
/// <param name="Training">How training ended.</param>
/// <param name="Data">The training points.</param>
/// <param name="ForwardFrames">q(x_t | x_0) of the data for t = 0 … T − 1.</param>
/// <param name="ReverseFrames">x_T … x_0 of the reverse process (the last frame holds the samples).</param>
/// <param name="MeanNearestDistance">Mean distance from each sample to its nearest training point.</param>
/// <param name="NoiseMeanNearestDistance">The same for pure N(0, I) noise: the untrained baseline.</param>
/// <param name="Images">The pictures written (forward.png, reverse.png: animated; samples.png), empty when not asked for.</param>
public sealed record ToyOutcome(TrainingResult Training, PointFrame Data, IReadOnlyList<PointFrame> ForwardFrames,
    IReadOnlyList<PointFrame> ReverseFrames, double MeanNearestDistance, double NoiseMeanNearestDistance, IReadOnlyList<string> Images);

/// <summary>Entry point of the S-curve toy (<c>ldm toy s-curve</c>): train, then run both processes.</summary>
public static class ToyTraining
{
    /// <summary>
    /// Trains the toy in <paramref name="outputDirectory"/> (metrics, checkpoints, model/ as every
    /// run), then returns the forward frames of the data and the reverse frames of
    /// <see cref="ToyRecipe.SamplePoints"/> samples drawn with the trained model. When cancelled,
    /// the frames are empty and the distances NaN. With <paramref name="writeImages"/>, sample scatter
    /// plots go to samples/ during training, and forward.png and reverse.png (animated PNGs, 100 ms per
    /// step) and samples.png (the final samples over the data) to the output folder.
    /// </summary>
    public static ToyOutcome Run(ToyRecipe recipe, string outputDirectory, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default, bool writeImages = true)
    {
        recipe.Validate("recipe");
        using var data = SCurve.Sample(recipe.Points, recipe.Noise, recipe.Scale, recipe.DataSeed);
        var dataFrame = new PointFrame(0, data.ToArray<float>());
        using var task = new ToyTask(recipe)
        {
            SampleWriter = writeImages
                ? (dir, step, points) => ToyRendering.WriteScatter(Path.Combine(dir, $"step-{step:D6}.png"), new PointFrame(0, points.ToArray<float>()), dataFrame)
                : null,
        };
        var trainer = new Trainer(recipe.Training, outputDirectory);
        var result = trainer.Run(task, new PointDataset(data), resume, progress, cancellationToken);
        if (result.Cancelled) return new ToyOutcome(result, dataFrame, [], [], double.NaN, double.NaN, []);

        using var random = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0xF4A3E5));
        var forward = ToyDiffusion.ForwardFrames(data, task.Schedule, random);
        var reverse = ToyDiffusion.ReverseFrames(task.Diffusion, task.Schedule, recipe.SamplePoints, random);
        using var samples = Tensor.From(reverse[^1].Coordinates, reverse[^1].Count, 2);
        using var noise = Tensors.Randn([recipe.SamplePoints, 2], random);
        var images = new List<string>();
        if (writeImages)
        {
            images.Add(ToyRendering.WriteAnimation(Path.Combine(trainer.OutputDirectory, "forward.png"), forward));
            images.Add(ToyRendering.WriteAnimation(Path.Combine(trainer.OutputDirectory, "reverse.png"), reverse));
            images.Add(ToyRendering.WriteScatter(Path.Combine(trainer.OutputDirectory, "samples.png"), reverse[^1], dataFrame));
        }
        return new ToyOutcome(result, dataFrame, forward, reverse,
            SCurve.MeanNearestDistance(samples, data), SCurve.MeanNearestDistance(noise, data), images);
    }
}

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
public sealed record ToyOutcome(TrainingResult Training, PointFrame Data, IReadOnlyList<PointFrame> ForwardFrames,
    IReadOnlyList<PointFrame> ReverseFrames, double MeanNearestDistance, double NoiseMeanNearestDistance);

/// <summary>Entry point of the S-curve toy (<c>ldm toy s-curve</c>): train, then run both processes.</summary>
public static class ToyTraining
{
    /// <summary>
    /// Trains the toy in <paramref name="outputDirectory"/> (metrics, checkpoints, model/ as every
    /// run), then returns the forward frames of the data and the reverse frames of
    /// <see cref="ToyRecipe.SamplePoints"/> samples drawn with the trained model. When cancelled,
    /// the frames are empty and the distances NaN.
    /// </summary>
    public static ToyOutcome Run(ToyRecipe recipe, string outputDirectory, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        recipe.Validate("recipe");
        using var data = SCurve.Sample(recipe.Points, recipe.Noise, recipe.Scale, recipe.DataSeed);
        using var task = new ToyTask(recipe);
        var trainer = new Trainer(recipe.Training, outputDirectory);
        var result = trainer.Run(task, new PointDataset(data), resume, progress, cancellationToken);
        var dataFrame = new PointFrame(0, data.ToArray<float>());
        if (result.Cancelled) return new ToyOutcome(result, dataFrame, [], [], double.NaN, double.NaN);

        using var random = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0xF4A3E5));
        var forward = ToyDiffusion.ForwardFrames(data, task.Schedule, random);
        var reverse = ToyDiffusion.ReverseFrames(task.Diffusion, task.Schedule, recipe.SamplePoints, random);
        using var samples = Tensor.From(reverse[^1].Coordinates, reverse[^1].Count, 2);
        using var noise = Torch.Torch.Randn([recipe.SamplePoints, 2], random);
        return new ToyOutcome(result, dataFrame, forward, reverse,
            SCurve.MeanNearestDistance(samples, data), SCurve.MeanNearestDistance(noise, data));
    }
}

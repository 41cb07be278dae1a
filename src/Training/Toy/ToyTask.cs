using System.Text.Json;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Toy;

/// <summary>The 2-D toy as a training task: ε-prediction on the S-curve with the toy's own schedule.</summary>
public sealed class ToyTask : ITrainingTask, IDisposable
{
    private readonly ToyRecipe recipe;

    public MlpDiffusion Diffusion { get; }
    public ToySchedule Schedule { get; }
    public Module Model => Diffusion;

    /// <summary>Called with each sample cloud the trainer asks for (step, points [n, 2]); e.g. to draw a scatter plot.</summary>
    public Func<string, long, Tensor, string?>? SampleWriter { get; init; }

    public ToyTask(ToyRecipe recipe)
    {
        this.recipe = recipe;
        Schedule = new ToySchedule(recipe.NumSteps, recipe.BetaMin, recipe.BetaMax);
        using var g = new Generator(SplitMix64.Mix(recipe.Training.Seed, 0x1417));
        Diffusion = new MlpDiffusion(recipe.NumSteps, recipe.HiddenUnits, generator: g);
    }

    /// <summary>
    /// The write-up's loss: timesteps drawn in antithetic pairs (t, T − 1 − t) so that every batch
    /// covers early and late steps alike, x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, and ‖ε − ε_θ(x_t, t)‖².
    /// </summary>
    public Tensor ComputeLoss(Batch batch, Generator random)
    {
        var x0 = batch.Data;
        var device = x0.Device;
        long n = x0.Size(0), half = n / 2, T = recipe.NumSteps;
        var t = Tensors.Randint(0, T, [half], random);
        // Tensor − tensor keeps int64 (a C# scalar is a double and would promote the steps to float).
        var parts = new List<Tensor> { t, Tensors.Full([half], T - 1, DType.Int64) - t };
        if (n % 2 == 1) parts.Add(Tensors.Randint(0, T, [1], random));
        var steps = Tensor.Cat(parts);
        var a = Schedule.AlphasBarSqrt.IndexSelect(0, steps).Unsqueeze(1).To(device);
        var sigma = Schedule.OneMinusAlphasBarSqrt.IndexSelect(0, steps).Unsqueeze(1).To(device);
        var noise = TrainingRandom.RandnLike(x0, random);
        var noisy = x0 * a + noise * sigma;
        return Losses.Compute(recipe.Training.Loss, Diffusion.Forward(noisy, steps.To(device)), noise);
    }

    public string? WriteSamples(string directory, long step, Generator random, CancellationToken cancellationToken)
    {
        if (SampleWriter is null) return null;
        using var points = ToyDiffusion.Sample(Diffusion, Schedule, recipe.SamplePoints, random);
        return SampleWriter(directory, step, points);
    }

    /// <summary>model.safetensors (the MLP) and toy_recipe.json (the recipe that defines its schedule).</summary>
    public void SaveModel(string directory)
    {
        Directory.CreateDirectory(directory);
        SafeTensorsFile.Save(Path.Combine(directory, "model.safetensors"), Diffusion.StateDict(), new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(directory, "toy_recipe.json"), RecipeJson.Serialize(recipe) + "\n");
    }

    public void Dispose()
    {
        Diffusion.Dispose();
        Schedule.Dispose();
    }
}

/// <summary>The S-curve as a dataset of points.</summary>
public sealed class PointDataset : IDataset
{
    private readonly float[] coordinates;
    private readonly int dimensions;

    /// <summary>Copies <paramref name="points"/> [n, d] (the caller keeps the tensor).</summary>
    public PointDataset(Tensor points)
    {
        if (points.Dim != 2) throw new ArgumentException("points must be [n, d]", nameof(points));
        using var floats = points.To(DType.Float32).Contiguous();
        coordinates = floats.ToArray<float>();
        dimensions = (int)points.Size(1);
    }

    public int Count => coordinates.Length / dimensions;
    public IReadOnlyList<long> ItemShape => [dimensions];

    public Batch GetBatch(ReadOnlySpan<int> indices, ulong augmentationSeed, int firstRow = 0)
    {
        var data = new float[indices.Length * dimensions];
        for (int i = 0; i < indices.Length; i++)
            Array.Copy(coordinates, indices[i] * dimensions, data, i * dimensions, dimensions);
        return new Batch(Tensor.From(data, indices.Length, dimensions));
    }
}

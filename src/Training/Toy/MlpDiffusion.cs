using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Training.Toy;

/// <summary>
/// The toy's noise predictor: an MLP 2 → 128 → 128 → 128 → 2 with ReLU, where a learned embedding of
/// the step (one table per hidden layer) is added after each hidden Linear, before its ReLU.
/// Names follow the write-up's module: linears.{0,2,4,6}, step_embeddings.{0,1,2}.
/// </summary>
public sealed class MlpDiffusion : Module
{
    private readonly Linear[] hidden;
    private readonly Linear output;
    private readonly Embedding[] embeddings;

    public int Steps { get; }
    public int Units { get; }

    public MlpDiffusion(int steps, int units = 128, int dimensions = 2, Generator? generator = null)
    {
        Steps = steps;
        Units = units;
        var linears = RegisterModule("linears", new ModuleList());
        hidden = [new Linear(dimensions, units, generator: generator), new Linear(units, units, generator: generator), new Linear(units, units, generator: generator)];
        foreach (var layer in hidden)
        {
            linears.Add(layer);
            linears.Add(new ReLU());
        }
        output = new Linear(units, dimensions, generator: generator);
        linears.Add(output);
        var tables = RegisterModule("step_embeddings", new ModuleList());
        embeddings = [.. Enumerable.Range(0, 3).Select(_ => new Embedding(steps, units, generator))];
        foreach (var table in embeddings) tables.Add(table);
    }

    /// <summary>Points [B, 2] at steps [B] (int64) → predicted noise [B, 2].</summary>
    public Tensor Forward(Tensor x, Tensor steps)
    {
        using var scope = DisposeScope.Enter();
        var h = x;
        for (int i = 0; i < hidden.Length; i++)
            h = (hidden[i].Forward(h) + embeddings[i].Forward(steps)).Relu();
        return scope.Keep(output.Forward(h));
    }
}

using System.Globalization;
using System.Text.RegularExpressions;

namespace LatentDiffusion.Torch.Optim;

/// <summary>
/// Base of the optimisers: one parameter group over a fixed list of parameters. The optimiser owns
/// its state tensors (created lazily, like PyTorch's, on the first step in which a parameter has a
/// gradient) and frees them when disposed. Convert the model before building its optimiser: state
/// does not follow a later <c>module.To(...)</c>.
/// </summary>
public abstract partial class Optimizer : IDisposable
{
    private readonly Tensor[] parameters;
    private double learningRate;
    private bool disposed;

    protected Optimizer(IEnumerable<Tensor> parameters, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        this.parameters = parameters.ToArray();
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var p in this.parameters)
            if (!seen.Add(p)) throw new ArgumentException("a parameter appears more than once in the optimiser's list", nameof(parameters));
        LearningRate = learningRate;
    }

    public IReadOnlyList<Tensor> Parameters => parameters;

    /// <summary>The learning rate of the next <see cref="Step"/>; schedules set it (see <see cref="LRScheduler"/>).</summary>
    public double LearningRate
    {
        get => learningRate;
        set
        {
            if (!(value >= 0)) throw new ArgumentOutOfRangeException(nameof(value), value, "the learning rate must be a non-negative number");
            learningRate = value;
        }
    }

    /// <summary>Updates every parameter that has a gradient; parameters without one are left alone.</summary>
    public abstract void Step();

    /// <summary>Drops every parameter's gradient (zero_grad(set_to_none=True)).</summary>
    public void ZeroGrad()
    {
        foreach (var p in parameters) p.ZeroGrad();
    }

    /// <summary>
    /// The optimiser state by parameter index, named like PyTorch's (<c>state.3.exp_avg</c>), for
    /// resuming training. The tensors are the optimiser's own: save them, never dispose them, and
    /// read them before the next step changes them. Hyperparameters are not included.
    /// </summary>
    public abstract OrderedDictionary<string, Tensor> StateDict();

    /// <summary>
    /// Restores state written by <see cref="StateDict"/> of an optimiser of the same kind over the same
    /// parameter list; parameters absent from <paramref name="state"/> start afresh. Validated in full
    /// before anything changes.
    /// </summary>
    public abstract void LoadStateDict(IReadOnlyDictionary<string, Tensor> state);

    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);

    [GeneratedRegex(@"^state\.(\d+)\.([a-z_]+)$")]
    private static partial Regex StateKey();

    /// <summary>
    /// Groups <paramref name="state"/> by parameter index and checks that every entry is one of
    /// <paramref name="fields"/>, that each parameter has all of them, and that tensor fields
    /// (all but "step") have the parameter's shape.
    /// </summary>
    protected Dictionary<int, Dictionary<string, Tensor>> ParseState(IReadOnlyDictionary<string, Tensor> state, params string[] fields)
    {
        ArgumentNullException.ThrowIfNull(state);
        var result = new Dictionary<int, Dictionary<string, Tensor>>();
        var problems = new List<string>();
        foreach (var (key, tensor) in state)
        {
            var m = StateKey().Match(key);
            if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                || index >= parameters.Length || !fields.Contains(m.Groups[2].Value))
            {
                problems.Add($"unexpected key {key}");
                continue;
            }
            var field = m.Groups[2].Value;
            if (field != "step" && !parameters[index].Shape.AsSpan().SequenceEqual(tensor.Shape))
                problems.Add($"{key} has shape [{string.Join(", ", tensor.Shape)}] but parameter {index} has [{string.Join(", ", parameters[index].Shape)}]");
            if (!result.TryGetValue(index, out var entry)) result[index] = entry = [];
            entry[field] = tensor;
        }
        foreach (var (index, entry) in result)
            foreach (var field in fields)
                if (!entry.ContainsKey(field)) problems.Add($"state.{index}.{field} is missing");
        if (problems.Count > 0)
            throw new ArgumentException($"the optimiser state does not fit this {GetType().Name}: {string.Join("; ", problems.Take(10))}{(problems.Count > 10 ? $"; … and {problems.Count - 10} more" : "")}");
        return result;
    }

    /// <summary>A state tensor of this optimiser: a copy of <paramref name="source"/> with parameter <paramref name="index"/>'s dtype and device.</summary>
    protected Tensor OwnedCopy(Tensor source, int index)
    {
        var p = parameters[index];
        using var noGrad = Autograd.NoGrad();
        return source.To(p.Device, p.DType, copy: true).DetachFromDisposeScope();
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        disposed = true;
    }
}

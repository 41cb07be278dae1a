using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.Optim;

/// <summary>
/// Exponential moving average of parameters, as diffusers' EMAModel: shadow copies updated after each
/// optimiser step by shadow ← decay · shadow + (1 − decay) · param (parameters that do not require
/// grad are copied). The decay of optimisation step k (counted from 1) is 0 for
/// k ≤ update_after_step + 1, else with s = k − update_after_step − 1:
/// min(decay, 1 − (1 + s/inv_gamma)^−power) with <c>useWarmup</c>, min(decay, (1 + s)/(10 + s))
/// without, and never below min_decay. The shadows are owned by this object.
/// </summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    private readonly Tensor[] parameters;
    private readonly Tensor[] shadows;
    private Tensor[]? stored;
    private Tensor? stepTensor;
    private bool disposed;

    public double Decay { get; }
    public double MinDecay { get; }
    public long UpdateAfterStep { get; }
    public bool UseWarmup { get; }
    public double InvGamma { get; }
    public double Power { get; }

    /// <summary>Number of <see cref="Update()"/> calls so far (diffusers' optimization_step).</summary>
    public long OptimizationStep { get; private set; }

    /// <summary>The decay used by the latest update.</summary>
    public double CurrentDecay { get; private set; }

    public ExponentialMovingAverage(IEnumerable<Tensor> parameters, double decay = 0.9999, double minDecay = 0, long updateAfterStep = 0,
        bool useWarmup = false, double invGamma = 1, double power = 2.0 / 3.0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(decay >= 0 && decay <= 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "decay must be in [0, 1]");
        this.parameters = parameters.ToArray();
        Decay = decay;
        MinDecay = minDecay;
        UpdateAfterStep = updateAfterStep;
        UseWarmup = useWarmup;
        InvGamma = invGamma;
        Power = power;
        using var noGrad = Autograd.NoGrad();
        shadows = this.parameters.Select(p => p.Clone().DetachFromDisposeScope()).ToArray();
    }

    public ExponentialMovingAverage(Module module, double decay = 0.9999, double minDecay = 0, long updateAfterStep = 0,
        bool useWarmup = false, double invGamma = 1, double power = 2.0 / 3.0)
        : this(module.Parameters(), decay, minDecay, updateAfterStep, useWarmup, invGamma, power)
    {
    }

    /// <summary>The averaged values, one per tracked parameter (owned by this object).</summary>
    public IReadOnlyList<Tensor> ShadowParameters => shadows;

    /// <summary>diffusers' get_decay for optimisation step <paramref name="optimizationStep"/> (counted from 1).</summary>
    public double DecayAt(long optimizationStep)
    {
        var step = Math.Max(0, optimizationStep - UpdateAfterStep - 1);
        if (step <= 0) return 0.0;
        var value = UseWarmup ? 1 - Math.Pow(1 + step / InvGamma, -Power) : (1.0 + step) / (10.0 + step);
        return Math.Max(Math.Min(value, Decay), MinDecay);
    }

    /// <summary>Counts an optimisation step and averages with that step's decay; returns the decay.</summary>
    public double Update()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var decay = DecayAt(OptimizationStep + 1);
        Update(decay);
        return decay;
    }

    /// <summary>Counts an optimisation step and averages with a fixed <paramref name="decay"/>.</summary>
    public unsafe void Update(double decay)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        OptimizationStep++;
        CurrentDecay = decay;
        var averaged = new List<int>(parameters.Length);
        using (var noGrad = Autograd.NoGrad())
        {
            for (int i = 0; i < parameters.Length; i++)
            {
                if (parameters[i].RequiresGrad) averaged.Add(i);
                else shadows[i].CopyFrom(parameters[i]);
            }
        }
        var e = averaged.Select(i => shadows[i].Handle).ToArray();
        var p = averaged.Select(i => parameters[i].Handle).ToArray();
        fixed (IntPtr* ep = e)
        fixed (IntPtr* pp = p)
            Tensor.Check(NativeMethods.EmaUpdate(ep, pp, e.Length, decay), "ema_update");
    }

    /// <summary>Copies the averages into the tracked parameters (after <see cref="Store"/> to evaluate and come back).</summary>
    public void CopyTo() => CopyTo(parameters);

    /// <summary>Copies the averages into <paramref name="module"/>'s parameters, in order (e.g. a separate model to save).</summary>
    public void CopyTo(Module module) => CopyTo(module.Parameters().ToArray());

    public void CopyTo(IReadOnlyList<Tensor> targets)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (targets.Count != shadows.Length)
            throw new ArgumentException($"the EMA tracks {shadows.Length} parameters but {targets.Count} were given", nameof(targets));
        using var noGrad = Autograd.NoGrad();
        for (int i = 0; i < shadows.Length; i++) targets[i].CopyFrom(shadows[i]);
    }

    /// <summary>Saves copies of the tracked parameters' current values, for <see cref="Restore"/>.</summary>
    public void Store()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        FreeStored();
        using var noGrad = Autograd.NoGrad();
        stored = parameters.Select(p => p.Clone().DetachFromDisposeScope()).ToArray();
    }

    /// <summary>Puts back the values saved by <see cref="Store"/> and frees the copies.</summary>
    public void Restore()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (stored is null) throw new InvalidOperationException("Restore needs a previous Store");
        using (var noGrad = Autograd.NoGrad())
            for (int i = 0; i < stored.Length; i++) parameters[i].CopyFrom(stored[i]);
        FreeStored();
    }

    private void FreeStored()
    {
        if (stored is null) return;
        foreach (var t in stored) t.Dispose();
        stored = null;
    }

    /// <summary>
    /// <c>optimization_step</c> and <c>shadow_params.{i}</c>; the tensors are this object's own (save
    /// them, never dispose them). The decay settings are not included.
    /// </summary>
    public OrderedDictionary<string, Tensor> StateDict()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        stepTensor ??= Tensors.Scalar(0, DType.Int64).DetachFromDisposeScope();
        stepTensor.Fill_(OptimizationStep);
        var result = new OrderedDictionary<string, Tensor> { ["optimization_step"] = stepTensor };
        for (int i = 0; i < shadows.Length; i++) result[$"shadow_params.{i}"] = shadows[i];
        return result;
    }

    /// <summary>Restores a <see cref="StateDict"/>; every key must be present with the right shape.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(state);
        var problems = new List<string>();
        if (!state.ContainsKey("optimization_step")) problems.Add("optimization_step is missing");
        for (int i = 0; i < shadows.Length; i++)
        {
            if (!state.TryGetValue($"shadow_params.{i}", out var t)) problems.Add($"shadow_params.{i} is missing");
            else if (!t.Shape.AsSpan().SequenceEqual(shadows[i].Shape))
                problems.Add($"shadow_params.{i} has shape [{string.Join(", ", t.Shape)}], expected [{string.Join(", ", shadows[i].Shape)}]");
        }
        var expected = Enumerable.Range(0, shadows.Length).Select(i => $"shadow_params.{i}").Append("optimization_step").ToHashSet();
        problems.AddRange(state.Keys.Where(k => !expected.Contains(k)).Select(k => $"unexpected key {k}"));
        if (problems.Count > 0)
            throw new ArgumentException($"the EMA state does not fit: {string.Join("; ", problems.Take(10))}{(problems.Count > 10 ? $"; … and {problems.Count - 10} more" : "")}");
        OptimizationStep = state["optimization_step"].ItemInt64();
        using var noGrad = Autograd.NoGrad();
        for (int i = 0; i < shadows.Length; i++) shadows[i].CopyFrom(state[$"shadow_params.{i}"]);
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var t in shadows) t.Dispose();
        FreeStored();
        stepTensor?.Dispose();
    }
}

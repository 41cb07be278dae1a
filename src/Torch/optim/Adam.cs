using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.Optim;

/// <summary>
/// torch.optim.Adam / AdamW (single-tensor path of PyTorch 1.13, without amsgrad), running in
/// libtorch through one native call per step. Each parameter counts its own steps, as in PyTorch.
/// </summary>
public abstract class AdamBase : Optimizer
{
    private readonly bool decoupled;
    private readonly Tensor?[] expAvg;
    private readonly Tensor?[] expAvgSq;
    private readonly long[] steps;
    private readonly Tensor?[] stepTensors;

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }

    private protected AdamBase(IEnumerable<Tensor> parameters, double learningRate, (double, double) betas, double eps, double weightDecay, bool decoupled)
        : base(parameters, learningRate)
    {
        var (beta1, beta2) = betas;
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(betas), beta1, "beta1 must be in [0, 1)");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(betas), beta2, "beta2 must be in [0, 1)");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must not be negative");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must not be negative");
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        this.decoupled = decoupled;
        var n = Parameters.Count;
        expAvg = new Tensor?[n];
        expAvgSq = new Tensor?[n];
        steps = new long[n];
        stepTensors = new Tensor?[n];
    }

    /// <summary>Steps taken by parameter <paramref name="index"/> (steps in which it had a gradient).</summary>
    public long StepOf(int index) => steps[index];

    public override unsafe void Step()
    {
        ThrowIfDisposed();
        var byStep = new SortedDictionary<long, List<int>>();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            if (!p.HasGrad) continue;
            if (expAvg[i] is null)
            {
                expAvg[i] = Tensors.ZerosLike(p).DetachFromDisposeScope();
                expAvgSq[i] = Tensors.ZerosLike(p).DetachFromDisposeScope();
            }
            var step = ++steps[i];
            if (!byStep.TryGetValue(step, out var group)) byStep[step] = group = [];
            group.Add(i);
        }
        foreach (var (step, group) in byStep)
        {
            var ps = new IntPtr[group.Count];
            var ms = new IntPtr[group.Count];
            var vs = new IntPtr[group.Count];
            for (int k = 0; k < group.Count; k++)
            {
                ps[k] = Parameters[group[k]].Handle;
                ms[k] = expAvg[group[k]]!.Handle;
                vs[k] = expAvgSq[group[k]]!.Handle;
            }
            fixed (IntPtr* p = ps)
            fixed (IntPtr* m = ms)
            fixed (IntPtr* v = vs)
                Tensor.Check(NativeMethods.AdamWStep(p, m, v, group.Count, LearningRate, Beta1, Beta2, Eps, WeightDecay, step, decoupled ? 1 : 0), "adamw_step");
        }
    }

    public override OrderedDictionary<string, Tensor> StateDict()
    {
        ThrowIfDisposed();
        var result = new OrderedDictionary<string, Tensor>();
        for (int i = 0; i < Parameters.Count; i++)
        {
            if (expAvg[i] is null) continue;
            stepTensors[i] ??= Tensors.Scalar(0, DType.Int64).DetachFromDisposeScope();
            stepTensors[i]!.Fill_(steps[i]);
            result[$"state.{i}.step"] = stepTensors[i]!;
            result[$"state.{i}.exp_avg"] = expAvg[i]!;
            result[$"state.{i}.exp_avg_sq"] = expAvgSq[i]!;
        }
        return result;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        ThrowIfDisposed();
        var parsed = ParseState(state, "step", "exp_avg", "exp_avg_sq");
        for (int i = 0; i < Parameters.Count; i++)
        {
            if (parsed.TryGetValue(i, out var entry))
            {
                steps[i] = entry["step"].ItemInt64();
                Assign(expAvg, i, entry["exp_avg"]);
                Assign(expAvgSq, i, entry["exp_avg_sq"]);
            }
            else
            {
                steps[i] = 0;
                expAvg[i]?.Dispose();
                expAvgSq[i]?.Dispose();
                expAvg[i] = expAvgSq[i] = null;
            }
        }
    }

    private void Assign(Tensor?[] slots, int i, Tensor source)
    {
        if (slots[i] is { } existing && existing.DType == Parameters[i].DType && existing.Device == Parameters[i].Device)
        {
            existing.CopyFrom(source);
            return;
        }
        slots[i]?.Dispose();
        slots[i] = OwnedCopy(source, i);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var t in expAvg) t?.Dispose();
            foreach (var t in expAvgSq) t?.Dispose();
            foreach (var t in stepTensors) t?.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>torch.optim.Adam: weight decay is L2, added to the gradient.</summary>
public sealed class Adam : AdamBase
{
    public Adam(IEnumerable<Tensor> parameters, double learningRate = 1e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 0)
        : base(parameters, learningRate, betas ?? (0.9, 0.999), eps, weightDecay, decoupled: false)
    {
    }
}

/// <summary>torch.optim.AdamW: weight decay is decoupled, p ← p · (1 − lr · weight_decay) before the Adam update.</summary>
public sealed class AdamW : AdamBase
{
    public AdamW(IEnumerable<Tensor> parameters, double learningRate = 1e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 1e-2)
        : base(parameters, learningRate, betas ?? (0.9, 0.999), eps, weightDecay, decoupled: true)
    {
    }
}

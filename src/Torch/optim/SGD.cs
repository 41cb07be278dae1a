using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.Optim;

/// <summary>torch.optim.SGD with momentum, dampening, Nesterov momentum and L2 weight decay.</summary>
public sealed class SGD : Optimizer
{
    private readonly Tensor?[] momentumBuffers;

    public double Momentum { get; }
    public double Dampening { get; }
    public double WeightDecay { get; }
    public bool Nesterov { get; }

    public SGD(IEnumerable<Tensor> parameters, double learningRate, double momentum = 0, double dampening = 0, double weightDecay = 0,
        bool nesterov = false)
        : base(parameters, learningRate)
    {
        if (!(momentum >= 0)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "momentum must not be negative");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must not be negative");
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum requires a positive momentum and zero dampening");
        Momentum = momentum;
        Dampening = dampening;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        momentumBuffers = new Tensor?[Parameters.Count];
    }

    public override unsafe void Step()
    {
        ThrowIfDisposed();
        var n = Parameters.Count;
        var ps = new IntPtr[n];
        var bs = new IntPtr[n];
        for (int i = 0; i < n; i++)
        {
            ps[i] = Parameters[i].Handle;
            bs[i] = momentumBuffers[i]?.Handle ?? IntPtr.Zero;
        }
        int status;
        fixed (IntPtr* p = ps)
        fixed (IntPtr* b = bs)
            status = NativeMethods.SgdStep(p, b, n, LearningRate, Momentum, Dampening, WeightDecay, Nesterov ? 1 : 0);
        // The native step creates a buffer on a parameter's first step with momentum; adopt those
        // even when a later parameter failed, so that none leaks.
        for (int i = 0; i < n; i++)
            if (momentumBuffers[i] is null && bs[i] != IntPtr.Zero)
                momentumBuffers[i] = new Tensor(bs[i], "sgd_step").DetachFromDisposeScope();
        Tensor.Check(status, "sgd_step");
    }

    public override OrderedDictionary<string, Tensor> StateDict()
    {
        ThrowIfDisposed();
        var result = new OrderedDictionary<string, Tensor>();
        for (int i = 0; i < momentumBuffers.Length; i++)
            if (momentumBuffers[i] is { } buffer) result[$"state.{i}.momentum_buffer"] = buffer;
        return result;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        ThrowIfDisposed();
        var parsed = ParseState(state, "momentum_buffer");
        for (int i = 0; i < momentumBuffers.Length; i++)
        {
            var replacement = parsed.TryGetValue(i, out var entry) ? OwnedCopy(entry["momentum_buffer"], i) : null;
            momentumBuffers[i]?.Dispose();
            momentumBuffers[i] = replacement;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            foreach (var t in momentumBuffers) t?.Dispose();
        base.Dispose(disposing);
    }
}

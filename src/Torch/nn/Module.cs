using System.Diagnostics.CodeAnalysis;

namespace LatentDiffusion.Torch.NN;

/// <summary>
/// A node of a model: named child modules, parameters and buffers, registered explicitly in the
/// constructor under the attribute names PyTorch uses, e.g.
/// <code>conv_in = RegisterModule("conv_in", new Conv2d(4, 320, 3, padding: 1));</code>
/// so that <see cref="StateDict"/> names (<c>down_blocks.0.resnets.1.conv1.weight</c>) match
/// diffusers' and transformers' checkpoints. The module owns every registered tensor and frees them
/// (and its children) in <see cref="Dispose()"/>. Registered Tensor objects stay the same for the
/// module's whole life; <see cref="ModuleExtensions.To{T}(T, Device, DType?)"/> swaps the native
/// tensor behind them, so layers may keep them in fields and optimisers in lists.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<(string Name, Module Module)> children = [];
    private readonly List<(string Name, Tensor? Tensor)> parameters = [];
    private readonly List<(string Name, Tensor? Tensor, bool Persistent)> buffers = [];
    private readonly HashSet<string> names = [];
    private bool disposed;

    /// <summary>Training mode (the default) or evaluation mode; see <see cref="ModuleExtensions.Train{T}"/>.</summary>
    public bool IsTraining { get; private set; } = true;

    // ---- registration ----

    /// <summary>Registers <paramref name="module"/> as the child <paramref name="name"/> and returns it.</summary>
    public T RegisterModule<T>(string name, T module) where T : Module
    {
        ArgumentNullException.ThrowIfNull(module);
        if (ReferenceEquals(module, this)) throw new ArgumentException("a module cannot be its own child", nameof(module));
        ClaimName(name);
        children.Add((name, module));
        return module;
    }

    /// <summary>
    /// Registers a parameter (null registers an absent one, like <c>bias=False</c>, which appears in no
    /// listing). The module takes ownership: the tensor leaves its dispose scope and requires grad.
    /// A non-leaf tensor is detached first, as <c>nn.Parameter(t)</c> does.
    /// </summary>
    [return: NotNullIfNotNull(nameof(parameter))]
    public Tensor? RegisterParameter(string name, Tensor? parameter)
    {
        ClaimName(name);
        if (parameter is not null)
        {
            parameter.DetachFromDisposeScope();
            if (!parameter.IsLeaf) parameter.ReplaceWith(parameter.Detach());
            parameter.RequiresGrad = true;
        }
        parameters.Add((name, parameter));
        return parameter;
    }

    /// <summary>
    /// Registers a buffer: state that is not trained (e.g. position ids). Non-persistent buffers are
    /// left out of <see cref="StateDict"/>. The module takes ownership of the tensor.
    /// </summary>
    [return: NotNullIfNotNull(nameof(buffer))]
    public Tensor? RegisterBuffer(string name, Tensor? buffer, bool persistent = true)
    {
        ClaimName(name);
        buffer?.DetachFromDisposeScope();
        buffers.Add((name, buffer, persistent));
        return buffer;
    }

    private void ClaimName(string name)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (string.IsNullOrEmpty(name) || name.Contains('.'))
            throw new ArgumentException($"'{name}' is not a valid member name: it must be non-empty and contain no '.'", nameof(name));
        if (!names.Add(name))
            throw new ArgumentException($"{GetType().Name} already has a member named '{name}'", nameof(name));
    }

    // ---- listings (PyTorch's order: a module's own members, then its children's, depth first) ----

    /// <summary>This module (named "") and every descendant, each once, in registration order.</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules()
    {
        var seen = new HashSet<Module>(ReferenceEqualityComparer.Instance);
        var result = new List<(string, Module)>();
        CollectModules("", seen, result);
        return result;
    }

    private void CollectModules(string prefix, HashSet<Module> seen, List<(string, Module)> result)
    {
        if (!seen.Add(this)) return;
        result.Add((prefix, this));
        foreach (var (name, child) in children) child.CollectModules(Join(prefix, name), seen, result);
    }

    /// <summary>The direct children, each once.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren()
    {
        var seen = new HashSet<Module>(ReferenceEqualityComparer.Instance);
        foreach (var (name, child) in children)
            if (seen.Add(child)) yield return (name, child);
    }

    public IEnumerable<Module> Children() => NamedChildren().Select(c => c.Module);

    /// <summary>Every parameter of this module and its descendants with its dotted name; a shared tensor is listed once.</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters()
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (prefix, module) in NamedModules())
        {
            module.RestoreReleasedTensors();
            foreach (var (name, p) in module.parameters)
                if (p is not null && seen.Add(p)) yield return (Join(prefix, name), p);
        }
    }

    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Parameter);

    /// <summary>Every buffer, persistent or not, with its dotted name; a shared tensor is listed once.</summary>
    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers()
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (prefix, module) in NamedModules())
            foreach (var (name, b, _) in module.buffers)
                if (b is not null && seen.Add(b)) yield return (Join(prefix, name), b);
    }

    public IEnumerable<Tensor> Buffers() => NamedBuffers().Select(b => b.Buffer);

    /// <summary>Number of parameter elements (each shared tensor counted once).</summary>
    public long ParameterCount => OwnTensors(parameters: true).Sum(p => p.NumEl);

    /// <summary>
    /// The bytes of native memory this module and its descendants hold in parameters, buffers and what layers
    /// derived from them (a convolution's prepacked weight), each tensor counted once, as it is now: without
    /// giving back a weight that inference released (see <see cref="Conv2d"/>).
    /// </summary>
    public long TensorBytes() =>
        OwnTensors(parameters: true).Concat(OwnTensors(parameters: false)).Sum(t => t.StorageBytes)
        + NamedModules().Sum(m => m.Module.DerivedTensorBytes);

    // Parameters or buffers as they are, shared ones once (shape and dtype are right even while released).
    private IEnumerable<Tensor> OwnTensors(bool parameters)
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (_, module) in NamedModules())
            foreach (var t in parameters ? module.parameters.Select(p => p.Tensor) : module.buffers.Select(b => b.Tensor))
                if (t is not null && seen.Add(t)) yield return t;
    }

    /// <summary>Bytes of tensors a layer derived from its parameters and keeps (a prepacked weight).</summary>
    internal virtual long DerivedTensorBytes => 0;

    /// <summary>Makes now what a layer derives from its frozen parameters for inference (a convolution's prepacked weight).</summary>
    internal virtual void PrepackOwnWeights()
    {
    }

    /// <summary>
    /// Gives back the plain tensors that inference released (a convolution keeping only its prepacked weight),
    /// before anything outside the layer reads or writes them: listing, state dicts, conversion.
    /// </summary>
    internal virtual void RestoreReleasedTensors()
    {
    }

    private static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

    // ---- state dict ----

    /// <summary>
    /// Parameters and persistent buffers by dotted name, in PyTorch's state_dict order. The tensors are
    /// the module's own (not copies): read or save them, but never dispose them; they follow later
    /// training steps and conversions.
    /// </summary>
    public OrderedDictionary<string, Tensor> StateDict()
    {
        var result = new OrderedDictionary<string, Tensor>();
        CollectState("", result);
        return result;
    }

    private void CollectState(string prefix, OrderedDictionary<string, Tensor> result)
    {
        RestoreReleasedTensors();
        foreach (var (name, p) in parameters)
            if (p is not null) result[Join(prefix, name)] = p;
        foreach (var (name, b, persistent) in buffers)
            if (b is not null && persistent) result[Join(prefix, name)] = b;
        foreach (var (name, child) in children) child.CollectState(Join(prefix, name), result);
    }

    /// <summary>
    /// Copies <paramref name="stateDict"/>'s values into this module's parameters and persistent
    /// buffers in place, converting dtype and device (an fp16 file loads into an fp32 module).
    /// Nothing is copied when it throws: always on a shape mismatch, and in strict mode also when a
    /// key is missing or unexpected. Returns what did not match.
    /// </summary>
    public LoadStateDictResult LoadStateDict(IReadOnlyDictionary<string, Tensor> stateDict, bool strict = true)
    {
        var (result, copies) = MatchStateDict(stateDict, strict);
        using var noGrad = Autograd.NoGrad();
        foreach (var (target, source) in copies) target.CopyFrom(source);
        return result;
    }

    /// <summary>
    /// <see cref="LoadStateDict"/>'s checks without the copy: which of this module's tensors each entry of
    /// <paramref name="stateDict"/> (after the upgrade hooks) fills. Only names and shapes are read, so the
    /// entries may stand for tensors still in a file (a loader that copies them one at a time).
    /// </summary>
    internal (LoadStateDictResult Result, List<(Tensor Target, Tensor Source)> Copies) MatchStateDict(
        IReadOnlyDictionary<string, Tensor> stateDict, bool strict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        stateDict = Upgraded(stateDict);
        var own = StateDict();
        var missing = new List<string>();
        var mismatches = new List<ShapeMismatch>();
        var copies = new List<(Tensor Target, Tensor Source)>();
        foreach (var (name, target) in own)
        {
            if (!stateDict.TryGetValue(name, out var source))
            {
                missing.Add(name);
                continue;
            }
            var expected = target.Shape;
            var got = source.Shape;
            if (!expected.AsSpan().SequenceEqual(got)) mismatches.Add(new ShapeMismatch(name, expected, got));
            else copies.Add((target, source));
        }
        var unexpected = stateDict.Keys.Where(k => !own.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var result = new LoadStateDictResult(missing, unexpected, mismatches);
        if (mismatches.Count > 0 || (strict && !result.IsExactMatch))
            throw new StateDictException(GetType().Name, result, strict);
        return (result, copies);
    }

    // Every module (this one included) may rename or drop the keys of an older format before matching.
    private Dictionary<string, Tensor> Upgraded(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        var keys = new Dictionary<string, Tensor>(stateDict, StringComparer.Ordinal);
        foreach (var (path, module) in NamedModules()) module.UpgradeStateDict(path.Length == 0 ? "" : path + ".", keys);
        return keys;
    }

    /// <summary>
    /// PyTorch's load_state_dict pre-hook: called by <see cref="LoadStateDict"/> on every module, with
    /// its key <paramref name="prefix"/> ("" or "a.b."), before the keys are matched, to rename or drop
    /// the keys an older format used (diffusers' deprecated attention names, a buffer some versions
    /// saved). It may only move or remove entries: the tensors stay the caller's.
    /// </summary>
    protected virtual void UpgradeStateDict(string prefix, IDictionary<string, Tensor> stateDict)
    {
    }

    // ---- modes, conversion, gradients ----

    internal void SetTraining(bool on)
    {
        foreach (var (_, module) in NamedModules()) module.IsTraining = on;
    }

    internal void ConvertTensors(Device? device, DType? dtype)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (dtype is { } d && !d.IsFloatingPoint())
            throw new ArgumentException($"modules convert only to floating-point dtypes, not {d}", nameof(dtype));
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        using var noGrad = Autograd.NoGrad();
        foreach (var (_, module) in NamedModules())
        {
            module.RestoreReleasedTensors();
            foreach (var (_, p) in module.parameters)
                if (p is not null && seen.Add(p)) Convert(p, device, dtype);
            foreach (var (_, b, _) in module.buffers)
                if (b is not null && seen.Add(b)) Convert(b, device, dtype);
            module.OnTensorsReplaced();
        }
    }

    /// <summary>Called after parameters or buffers were replaced by converted tensors: drop what was derived from the old ones.</summary>
    internal virtual void OnTensorsReplaced()
    {
    }

    // Like PyTorch, a dtype applies to floating-point tensors only (integer buffers keep theirs),
    // and gradients are not carried over.
    private static void Convert(Tensor t, Device? device, DType? dtype)
    {
        var where = device ?? t.Device;
        var target = dtype is { } d && t.DType.IsFloatingPoint() ? d : t.DType;
        if (t.Device == where && t.DType == target) return;
        var requiresGrad = t.RequiresGrad;
        t.ReplaceWith(t.To(where, target).DetachFromDisposeScope());
        if (requiresGrad) t.RequiresGrad = true;
    }

    /// <summary>Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.ZeroGrad();
    }

    // ---- lifetime ----

    /// <summary>Frees every registered tensor and disposes the children.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposed || !disposing) return;
        disposed = true;
        foreach (var (_, child) in children) child.Dispose();
        foreach (var (_, p) in parameters) p?.Dispose();
        foreach (var (_, b, _) in buffers) b?.Dispose();
    }
}

/// <summary>A module with a typed forward pass.</summary>
public abstract class Module<TIn, TOut> : Module
{
    /// <summary>Runs the module. Returns new tensors owned by the caller; the input stays the caller's.</summary>
    public abstract TOut Forward(TIn input);
}

/// <summary>Chainable mode and conversion methods that keep the module's static type.</summary>
public static class ModuleExtensions
{
    /// <summary>Sets training mode (or evaluation mode when <paramref name="on"/> is false) on the whole tree.</summary>
    public static T Train<T>(this T module, bool on = true) where T : Module
    {
        module.SetTraining(on);
        return module;
    }

    /// <summary>
    /// Sets requires_grad on every parameter (PyTorch's Module.requires_grad_). A model frozen with false keeps
    /// one copy of each convolution weight at inference (the prepacked one, see <see cref="Conv2d"/>).
    /// </summary>
    public static T RequiresGrad<T>(this T module, bool on) where T : Module
    {
        foreach (var p in module.Parameters()) p.RequiresGrad = on;
        return module;
    }

    /// <summary>
    /// Prepacks the weights of a frozen module (<see cref="RequiresGrad{T}(T, bool)"/> false) now instead of at its
    /// first forward: each convolution then holds its packed copy only. Call it inside <see cref="NativeHeap.MapWeights"/>,
    /// where the released plain weights go back to the system (issue 19). Weights that require grad are left alone.
    /// </summary>
    public static T PrepackForInference<T>(this T module) where T : Module
    {
        foreach (var (_, m) in module.NamedModules()) m.PrepackOwnWeights();
        return module;
    }

    /// <summary>Evaluation mode on the whole tree: dropout off.</summary>
    public static T Eval<T>(this T module) where T : Module => module.Train(false);

    /// <summary>
    /// Moves every parameter and buffer to <paramref name="device"/> and converts floating-point ones to
    /// <paramref name="dtype"/>, in place: the same Tensor objects now hold the converted data, and
    /// parameters keep requiring grad. Gradients are dropped, and an optimiser's state built before
    /// does not follow: convert the module first.
    /// </summary>
    public static T To<T>(this T module, Device device, DType? dtype = null) where T : Module
    {
        module.ConvertTensors(device, dtype);
        return module;
    }

    /// <summary>Converts floating-point parameters and buffers to <paramref name="dtype"/> where they are.</summary>
    public static T To<T>(this T module, DType dtype) where T : Module
    {
        module.ConvertTensors(null, dtype);
        return module;
    }
}

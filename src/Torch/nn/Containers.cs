using System.Collections;
using System.Globalization;

namespace LatentDiffusion.Torch.NN;

/// <summary>torch.nn.ModuleList: children named "0", "1", … in order.</summary>
public class ModuleList<T> : Module, IReadOnlyList<T> where T : Module
{
    private readonly List<T> items = [];

    public ModuleList(IEnumerable<T>? modules = null)
    {
        if (modules is null) return;
        foreach (var m in modules) Add(m);
    }

    public T Add(T module)
    {
        RegisterModule(items.Count.ToString(CultureInfo.InvariantCulture), module);
        items.Add(module);
        return module;
    }

    public T this[int index] => items[index];
    public int Count => items.Count;
    public IEnumerator<T> GetEnumerator() => items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A ModuleList of any modules.</summary>
public sealed class ModuleList : ModuleList<Module>
{
    public ModuleList(IEnumerable<Module>? modules = null) : base(modules)
    {
    }

    public ModuleList(params Module[] modules) : base(modules)
    {
    }
}

/// <summary>torch.nn.Sequential: children "0", "1", … applied in order.</summary>
public sealed class Sequential : Module<Tensor, Tensor>, IReadOnlyList<Module<Tensor, Tensor>>
{
    private readonly List<Module<Tensor, Tensor>> items = [];

    public Sequential(params Module<Tensor, Tensor>[] modules)
    {
        foreach (var m in modules) Add(m);
    }

    public Module<Tensor, Tensor> Add(Module<Tensor, Tensor> module)
    {
        RegisterModule(items.Count.ToString(CultureInfo.InvariantCulture), module);
        items.Add(module);
        return module;
    }

    // Intermediate results are freed as soon as the next module has consumed them (autograd keeps
    // what it needs on its own), so a deep stack does not hold every activation until the scope ends.
    public override Tensor Forward(Tensor input)
    {
        var x = input;
        foreach (var module in items)
        {
            var y = module.Forward(x);
            if (!ReferenceEquals(x, input) && !ReferenceEquals(x, y)) x.Dispose();
            x = y;
        }
        return ReferenceEquals(x, input) ? input.Alias() : x;
    }

    public Module<Tensor, Tensor> this[int index] => items[index];
    public int Count => items.Count;
    public IEnumerator<Module<Tensor, Tensor>> GetEnumerator() => items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

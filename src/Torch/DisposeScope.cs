namespace LatentDiffusion.Torch;

/// <summary>
/// Frees every tensor created on this thread while the scope is open, except those passed to
/// <see cref="Keep{T}"/>, which move to the enclosing scope (or become unscoped):
/// <code>using var scope = DisposeScope.Enter(); … return scope.Keep(result);</code>
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? current;

    private readonly DisposeScope? parent;
    private readonly List<Tensor> owned = new();
    private bool disposed;

    private DisposeScope(DisposeScope? parent) => this.parent = parent;

    public static DisposeScope? Current => current;

    public static DisposeScope Enter() => current = new DisposeScope(current);

    /// <summary>Number of tensors this scope will free when it closes.</summary>
    public int Count => owned.Count;

    internal void Register(Tensor t) => owned.Add(t);

    /// <summary>Moves a tensor out of this scope into the enclosing one; returns it.</summary>
    public Tensor Keep(Tensor t)
    {
        Detach(t);
        parent?.Register(t);
        t.Scope = parent;
        return t;
    }

    public (Tensor, Tensor) Keep((Tensor a, Tensor b) pair) => (Keep(pair.a), Keep(pair.b));

    public IReadOnlyList<Tensor> Keep(IReadOnlyList<Tensor> tensors)
    {
        foreach (var t in tensors) Keep(t);
        return tensors;
    }

    internal void Detach(Tensor t)
    {
        // Results are usually the newest tensors, so search from the end.
        for (int i = owned.Count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(owned[i], t))
            {
                owned.RemoveAt(i);
                return;
            }
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var t in owned) t.DisposeFromScope();
        owned.Clear();
        if (current == this) current = parent;
    }
}

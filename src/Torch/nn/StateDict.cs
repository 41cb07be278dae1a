namespace LatentDiffusion.Torch.NN;

/// <summary>A state-dict entry whose shape differs from the module's.</summary>
public sealed record ShapeMismatch(string Name, long[] Expected, long[] Got)
{
    public override string ToString() => $"{Name} (expected [{string.Join(", ", Expected)}], got [{string.Join(", ", Got)}])";
}

/// <summary>What <see cref="Module.LoadStateDict"/> found: keys the module has that the dictionary lacks, and the reverse.</summary>
public sealed record LoadStateDictResult(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<ShapeMismatch> ShapeMismatches)
{
    public bool IsExactMatch => Missing.Count == 0 && Unexpected.Count == 0 && ShapeMismatches.Count == 0;
}

/// <summary>A state dict did not fit a module; the message names every key that did not fit.</summary>
public sealed class StateDictException : Exception
{
    public LoadStateDictResult Result { get; }

    public StateDictException(string moduleName, LoadStateDictResult result, bool strict) : base(Describe(moduleName, result, strict))
    {
        Result = result;
    }

    private static string Describe(string moduleName, LoadStateDictResult result, bool strict)
    {
        var parts = new List<string>();
        if (result.ShapeMismatches.Count > 0) parts.Add(List("shape mismatches", result.ShapeMismatches.Select(m => m.ToString()).ToList()));
        if (strict && result.Missing.Count > 0) parts.Add(List("missing keys", result.Missing));
        if (strict && result.Unexpected.Count > 0) parts.Add(List("unexpected keys", result.Unexpected));
        return $"cannot load the state dict into {moduleName}: {string.Join("; ", parts)}";
    }

    // Every name: a user comparing a file with a model needs the whole list, not the first few.
    private static string List(string what, IReadOnlyList<string> items) => $"{items.Count} {what}: {string.Join(", ", items)}";
}

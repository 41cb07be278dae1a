using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>A LoRA file with its strength (AUTOMATIC1111's multiplier, diffusers' lora_scale); it scales every component alike.</summary>
/// <param name="TextEncoderScale">The text encoders' strength when it differs from the U-Net's (A1111's te multiplier).</param>
public sealed record LoraSelection(LoraFile File, double Scale = 1.0, double? TextEncoderScale = null)
{
    /// <summary>The strength for one pipeline component.</summary>
    public double ScaleFor(string component) => component.StartsWith("text_encoder", StringComparison.Ordinal) ? TextEncoderScale ?? Scale : Scale;
}

/// <summary>
/// The LoRAs merged into a pipeline's weights: W' = W + Σ scale · (alpha / rank) · up · down per layer (convolutions:
/// up [out, r] · down [r, in·kh·kw] reshaped to W's shape), so generation costs nothing extra per step. The touched
/// weights' originals are kept as copies, not recovered by subtraction, so <see cref="Restore"/> gives them back bit for
/// bit in any dtype. <see cref="Apply"/> checks every file against the model before it writes anything: a LoRA for
/// another architecture leaves the pipeline as it was. Not thread-safe: one generation at a time, as the pipeline.
/// </summary>
public sealed class LoraAdapters : IDisposable
{
    private readonly IReadOnlyDictionary<string, Module> components;
    private readonly Dictionary<string, LoraTargets> targets = new(StringComparer.Ordinal);
    private readonly Dictionary<Tensor, Tensor> originals = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, (DateTime Written, long Length, LoraFile File)> loaded = new(StringComparer.Ordinal);
    private IReadOnlyList<LoraSelection> active = [];

    /// <param name="components">The modules by pipeline component name ("unet", "text_encoder").</param>
    public LoraAdapters(IReadOnlyDictionary<string, Module> components) => this.components = components;

    /// <summary>The LoRAs merged now, in order (empty: the model's own weights).</summary>
    public IReadOnlyList<LoraSelection> Active => active;

    /// <summary>Where LoRA names (prompt tags <c>&lt;lora:NAME:0.8&gt;</c>, <see cref="Load"/> without a path) are looked up, recursively.</summary>
    public string? Directory { get; set; }

    /// <summary>
    /// A LoRA by file path or by name in <see cref="Directory"/>, read once and kept (re-read when the file changes);
    /// owned by these adapters.
    /// </summary>
    public LoraFile Load(string pathOrName)
    {
        var path = Path.GetFullPath(Locate(pathOrName));
        var info = new FileInfo(path);
        if (loaded.TryGetValue(path, out var cached) && cached.Written == info.LastWriteTimeUtc && cached.Length == info.Length) return cached.File;
        var file = LoraFile.Load(path);
        // A file changed on disk is read again; the old copy may still be merged, so it is freed with the adapters.
        if (cached.File is { } stale) replaced.Add(stale);
        loaded[path] = (info.LastWriteTimeUtc, info.Length, file);
        return file;
    }

    private readonly List<LoraFile> replaced = [];

    // A path, or a name (AUTOMATIC1111's: the file name without extension, dots allowed) in Directory and its sub-folders; a
    // pickle file of that name is returned too, so that loading it says why it is refused rather than "not found".
    private string Locate(string pathOrName)
    {
        if (File.Exists(pathOrName) || Path.IsPathRooted(pathOrName) || pathOrName.Contains(Path.DirectorySeparatorChar) || pathOrName.Contains('/'))
            return pathOrName;
        if (Directory is null)
            return Path.HasExtension(pathOrName) ? pathOrName : throw new FileNotFoundException($"LoRA '{pathOrName}' not found: no such file, and no LoRA directory is set to look it up in");
        var found = System.IO.Directory.EnumerateFiles(Directory, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileNameWithoutExtension(f) == pathOrName && Path.GetExtension(f).ToLowerInvariant() is ".safetensors" or ".pt" or ".ckpt" or ".bin")
            .OrderBy(f => Path.GetExtension(f).Equals(".safetensors", StringComparison.OrdinalIgnoreCase) ? 0 : 1)
            .ThenBy(f => f, StringComparer.Ordinal)
            .FirstOrDefault();
        return found ?? (Path.HasExtension(pathOrName) && File.Exists(Path.Combine(Directory, pathOrName)) ? Path.Combine(Directory, pathOrName)
            : throw new FileNotFoundException($"LoRA '{pathOrName}' not found in {Directory} (looked for {pathOrName}.safetensors)"));
    }

    /// <summary>
    /// Makes <paramref name="loras"/> the merged set (restoring first what another set merged; nothing when the set is the
    /// one merged now). Returns the warnings: file keys that map to no layer of this model, which are ignored, or with
    /// <paramref name="strict"/> refused. Throws, with nothing changed, for a LoRA that does not fit the model.
    /// </summary>
    public IReadOnlyList<string> Apply(IReadOnlyList<LoraSelection> loras, bool strict = false)
    {
        ArgumentNullException.ThrowIfNull(loras);
        if (SameAsActive(loras)) return [];
        var (updates, warnings) = Plan(loras);
        if (strict && warnings.Count > 0) throw new InvalidDataException(warnings[0]);
        Restore();
        try
        {
            using var noGrad = Autograd.NoGrad();
            foreach (var group in updates.GroupBy(u => u.Weight, ReferenceEqualityComparer.Instance))
                Merge((Tensor)group.Key!, group);
        }
        catch
        {
            Restore();
            throw;
        }
        active = [.. loras];
        return warnings;
    }

    /// <summary>Puts every merged weight back exactly as it was loaded.</summary>
    public void Restore()
    {
        using (Autograd.NoGrad())
        {
            foreach (var (weight, original) in originals)
            {
                weight.CopyFrom(original);
                original.Dispose();
            }
        }
        originals.Clear();
        active = [];
    }

    private bool SameAsActive(IReadOnlyList<LoraSelection> loras) =>
        loras.Count == active.Count && loras.Zip(active).All(p => p.First == p.Second);

    private readonly record struct Update(Tensor Weight, LoraModule Module, double Factor);

    // Everything is checked here, before Apply writes a single weight.
    private (List<Update> Updates, List<string> Warnings) Plan(IReadOnlyList<LoraSelection> loras)
    {
        var updates = new List<Update>();
        var warnings = new List<string>();
        foreach (var selection in loras)
        {
            var file = selection.File;
            if (!double.IsFinite(selection.Scale) || selection.TextEncoderScale is { } te && !double.IsFinite(te))
                throw new ArgumentOutOfRangeException(nameof(loras), selection.Scale, $"{file.Name}: the LoRA scale must be finite");
            var unmapped = new List<string>(file.UnknownKeys);
            foreach (var m in file.Modules)
            {
                if (!components.TryGetValue(m.Component, out var component))
                {
                    unmapped.Add(m.Name);
                    continue;
                }
                if (!targets.TryGetValue(m.Component, out var t)) targets[m.Component] = t = new LoraTargets(component);
                if (t.Resolve(m) is not { } target)
                {
                    if (t.MissingBlock(m) is { } block)
                        throw new InvalidDataException($"{file.FilePath}: {m.Name} changes {m.Component} block {block}, which this model does not have: the LoRA was made for another architecture (an SD 1.x/2.x LoRA on SDXL, or the reverse)");
                    unmapped.Add(m.Name);
                    continue;
                }
                if (!Fits(m, target.Weight.Shape))
                    throw new InvalidDataException($"{file.FilePath}: {m.Name}: down {LoraFile.Format(m.Down.Shape)} and up {LoraFile.Format(m.Up.Shape)} do not fit {m.Component}.{target.Path} {LoraFile.Format(target.Weight.Shape)}: the LoRA was made for another architecture");
                updates.Add(new Update(target.Weight, m, selection.ScaleFor(m.Component) * m.AlphaScale));
            }
            if (unmapped.Count > 0)
                warnings.Add($"{file.FilePath}: {(unmapped.Count == 1 ? "1 key maps" : $"{unmapped.Count} keys map")} to no layer of this model and {(unmapped.Count == 1 ? "is" : "are")} ignored: {string.Join(", ", unmapped.Take(8))}{(unmapped.Count > 8 ? ", …" : "")}");
        }
        return (updates, warnings);
    }

    // up · down must give W's shape: up [out, r(,1,1)]; down [r, in] for a linear layer or a 1×1 convolution, [r, in, kh, kw] with
    // W's kernel for a convolution (a LoCon 3×3 down carries the layer's stride and padding).
    private static bool Fits(LoraModule m, long[] w)
    {
        if (m.Up.Shape[0] != w[0]) return false;
        var down = m.Down.Shape;
        var kernel = w.Length == 4 ? (w[2], w[3]) : (1L, 1L);
        var downKernel = down.Length == 4 ? (down[2], down[3]) : (1L, 1L);
        return down[1] == w[1] && kernel == downKernel;
    }

    private void Merge(Tensor weight, IEnumerable<Update> updates)
    {
        var original = weight.Clone().DetachFromDisposeScope();
        originals[weight] = original;
        using var scope = DisposeScope.Enter();
        var merged = original.To(DType.Float32, copy: true);
        foreach (var u in updates)
        {
            var rank = u.Module.Rank;
            var up = u.Module.Up.Reshape(u.Module.Up.Shape[0], rank).To(weight.Device);
            var down = u.Module.Down.Reshape(rank, -1).To(weight.Device);
            merged.Add_(up.MatMul(down).Reshape(weight.Shape), u.Factor);
        }
        weight.CopyFrom(merged);
    }

    public void Dispose()
    {
        Restore();
        foreach (var (_, _, file) in loaded.Values) file.Dispose();
        foreach (var file in replaced) file.Dispose();
        loaded.Clear();
        replaced.Clear();
    }
}

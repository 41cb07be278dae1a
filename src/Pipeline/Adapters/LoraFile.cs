using System.Security.Cryptography;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>
/// A LoRA file (kohya-ss / AUTOMATIC1111 or diffusers / PEFT keys, <see cref="LoraKeys"/>), read and checked on its own:
/// every module has its down and up halves with matching rank, every value is finite. Whether it fits a model is
/// checked when it is applied (<see cref="LoraAdapters"/>). Keys of neither format are kept in <see cref="UnknownKeys"/>
/// for the caller's warning. The tensors are float32 on the CPU, owned by this object.
/// </summary>
public sealed class LoraFile : IDisposable
{
    public string FilePath { get; }

    /// <summary>The name prompts and PNG parameters use: the file name without extension (AUTOMATIC1111's).</summary>
    public string Name { get; }

    public IReadOnlyList<LoraModule> Modules { get; }

    /// <summary>Tensor names that belong to no LoRA module of the two formats (sorted).</summary>
    public IReadOnlyList<string> UnknownKeys { get; }

    /// <summary>
    /// AUTOMATIC1111's "Lora hashes" value: the first 12 hex digits of the file's <c>sshs_model_hash</c> metadata when kohya
    /// wrote one, else of sd-webui-additional-networks' hash (SHA-256 of everything after the safetensors header).
    /// </summary>
    public string ShortHash { get; }

    private LoraFile(string path, List<LoraModule> modules, List<string> unknown, string hash)
    {
        FilePath = path;
        Name = Path.GetFileNameWithoutExtension(path);
        Modules = modules;
        UnknownKeys = unknown;
        ShortHash = hash;
    }

    /// <summary>Reads <paramref name="path"/>; one exception with a one-line message for anything wrong with the file itself.</summary>
    public static LoraFile Load(string path)
    {
        using var file = AdapterFile.Open(path, "LoRA");
        var parts = new Dictionary<(string Component, string Key, bool Dotted), Dictionary<LoraPart, string>>();
        var unknown = new List<string>();
        foreach (var name in file.Keys)
        {
            if (LoraKeys.Parse(name) is not { } parsed)
            {
                unknown.Add(name);
                continue;
            }
            var id = (parsed.Component, parsed.Key, parsed.IsDottedPath);
            if (!parts.TryGetValue(id, out var of)) parts[id] = of = [];
            of[parsed.Part] = name;
        }
        if (parts.Count == 0)
            throw new InvalidDataException($"{path}: no LoRA weights found (expected kohya lora_unet_…/lora_te_… .lora_down/.lora_up keys or diffusers unet.…/text_encoder.… .lora_A/.lora_B keys; the file has {file.Keys.Count} tensors{(file.Keys.Count > 0 ? ", e.g. " + file.Keys[0] : "")})");

        var modules = new List<LoraModule>(parts.Count);
        try
        {
            foreach (var ((component, key, dotted), of) in parts.OrderBy(p => p.Value.Values.Min(), StringComparer.Ordinal))
                modules.Add(ReadModule(file, path, component, key, dotted, of));
            Pretrained.RequireFinite(path, modules.SelectMany(m => new[] { KeyValuePair.Create(m.Name + " (down)", m.Down), KeyValuePair.Create(m.Name + " (up)", m.Up) }));
        }
        catch
        {
            foreach (var m in modules) DisposeModule(m);
            throw;
        }
        unknown.Sort(StringComparer.Ordinal);
        return new LoraFile(path, modules, unknown, ShortHashOf(path, file.Metadata));
    }

    private static LoraModule ReadModule(Torch.SafeTensors.SafeTensorsFile file, string path, string component, string key, bool dotted,
        Dictionary<LoraPart, string> of)
    {
        var prefix = dotted ? "" : LoraKeys.KohyaPrefixIn(of.Values.First());
        var name = dotted ? $"{component}.{key}" : prefix + key;
        if (!of.TryGetValue(LoraPart.Down, out var downKey) || !of.TryGetValue(LoraPart.Up, out var upKey))
            throw new InvalidDataException($"{path}: module {name} has {(of.ContainsKey(LoraPart.Down) ? "a down" : of.ContainsKey(LoraPart.Up) ? "an up" : "only an alpha")} weight but no {(of.ContainsKey(LoraPart.Down) ? "up" : "down")} weight");
        double? alpha = null;
        if (of.TryGetValue(LoraPart.Alpha, out var alphaKey))
        {
            using var a = file.Load(alphaKey, DType.Float64);
            if (a.NumEl != 1) throw new InvalidDataException($"{path}: {alphaKey} has {a.NumEl} values; alpha is one number");
            alpha = a.Item();
            if (!double.IsFinite(alpha.Value)) throw new InvalidDataException($"{path}: {alphaKey} is {alpha.Value}; alpha must be finite");
        }
        var down = file.Load(downKey, DType.Float32);
        Tensor up;
        try
        {
            up = file.Load(upKey, DType.Float32);
        }
        catch
        {
            down.Dispose();
            throw;
        }
        var module = new LoraModule(component, key, dotted, down, up, alpha) { KohyaPrefix = prefix };
        try
        {
            CheckShapes(path, module, downKey, upKey);
        }
        catch
        {
            DisposeModule(module);
            throw;
        }
        return module;
    }

    // down [r, in] or [r, in, kh, kw]; up [out, r] or [out, r, 1, 1]: the rank is down's first and up's second dimension.
    private static void CheckShapes(string path, LoraModule m, string downKey, string upKey)
    {
        var (down, up) = (m.Down.Shape, m.Up.Shape);
        if (down.Length is not (2 or 4) || up.Length is not (2 or 4))
            throw new InvalidDataException($"{path}: {m.Name}: down {Format(down)} and up {Format(up)} must be 2-D (linear) or 4-D (convolution)");
        if (down[0] != up[1])
            throw new InvalidDataException($"{path}: {m.Name}: rank mismatch: {downKey} {Format(down)} has rank {down[0]} but {upKey} {Format(up)} has rank {up[1]}");
        if (down[0] == 0) throw new InvalidDataException($"{path}: {m.Name}: rank 0");
        if (up.Length == 4 && (up[2] != 1 || up[3] != 1))
            throw new InvalidDataException($"{path}: {m.Name}: {upKey} {Format(up)} must be a 1×1 convolution");
    }

    /// <summary>
    /// The kohya / AUTOMATIC1111 name of a layer: the component's prefix (lora_unet_, lora_te_) and the module path with '.' → '_',
    /// as kohya's trainer writes it and as <see cref="LoraAdapters"/> resolves it.
    /// </summary>
    public static string KohyaName(string component, string modulePath) => LoraKeys.KohyaPrefixOf(component) + modulePath.Replace('.', '_');

    internal static string Format(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private static string ShortHashOf(string path, IReadOnlyDictionary<string, string> metadata)
    {
        if (metadata.TryGetValue("sshs_model_hash", out var kohya) && kohya.Length > 0) return kohya.Length > 12 ? kohya[..12] : kohya;
        using var stream = File.OpenRead(path);
        Span<byte> length = stackalloc byte[8];
        stream.ReadExactly(length);
        stream.Seek(8 + (long)BitConverter.ToUInt64(length), SeekOrigin.Begin);
        return Convert.ToHexStringLower(SHA256.HashData(stream))[..12];
    }

    private static void DisposeModule(LoraModule m)
    {
        m.Down.Dispose();
        m.Up.Dispose();
    }

    public void Dispose()
    {
        foreach (var m in Modules) DisposeModule(m);
    }
}

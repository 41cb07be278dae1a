using LatentDiffusion.Torch.SafeTensors;

namespace LatentDiffusion.Server;

/// <summary>A LoRA file offered by GET /sdapi/v1/loras: AUTOMATIC1111's name (the file name without extension), its path and safetensors metadata.</summary>
public sealed record LoraEntry(string Name, string Path, IReadOnlyDictionary<string, string> Metadata);

/// <summary>A ControlNet model offered by GET /controlnet/model_list: a diffusers folder (config.json) or a single-file checkpoint.</summary>
public sealed record ControlNetEntry(string Name, string Path);

/// <summary>
/// The LoRAs in --lora-dir and the ControlNets in --controlnet-dir, listed at start and on refresh. A client names them,
/// never gives a path (<see cref="ModelCatalog.CheckName"/>), so a request cannot make the server open a file elsewhere.
/// </summary>
public sealed class AdapterCatalog(string? loraDirectory, string? controlNetDirectory)
{
    private volatile IReadOnlyList<LoraEntry> loras = ScanLoras(loraDirectory);

    public string? LoraDirectory { get; } = loraDirectory;

    public IReadOnlyList<LoraEntry> Loras => loras;

    /// <summary>Reads the LoRA folder again (AUTOMATIC1111's POST /sdapi/v1/refresh-loras).</summary>
    public void RefreshLoras() => loras = ScanLoras(LoraDirectory);

    /// <summary>The ControlNets in the folder now (a new one needs no refresh).</summary>
    public IReadOnlyList<ControlNetEntry> ControlNets() => controlNetDirectory is null || !Directory.Exists(controlNetDirectory) ? []
        : Directory.EnumerateDirectories(controlNetDirectory).Where(d => File.Exists(System.IO.Path.Combine(d, "config.json")))
            .Concat(Directory.EnumerateFiles(controlNetDirectory, "*.safetensors"))
            .Select(p => new ControlNetEntry(System.IO.Path.GetFileNameWithoutExtension(System.IO.Path.TrimEndingDirectorySeparator(p)), p))
            .OrderBy(e => e.Name, StringComparer.Ordinal)
            .ToList();

    /// <summary>The ControlNet a request named (A1111's model_list titles carry " [hash]", which is ignored as for checkpoints).</summary>
    /// <exception cref="ApiException">422 for a path, "None", or a name the folder has not.</exception>
    public ControlNetEntry FindControlNet(string name, string field)
    {
        ModelCatalog.CheckName(name, field, "/controlnet/model_list");
        var bare = ModelCatalog.WithoutHash(name);
        var all = ControlNets();
        return all.FirstOrDefault(e => e.Name == bare)
            ?? throw ApiException.Invalid($"{field}: unknown ControlNet model '{ModelCatalog.Printable(name)}' (known: {(all.Count == 0 ? "none; start the server with --controlnet-dir" : string.Join(", ", all.Select(e => e.Name)))})");
    }

    private static IReadOnlyList<LoraEntry> ScanLoras(string? directory) => directory is null || !Directory.Exists(directory) ? []
        : Directory.EnumerateFiles(directory, "*.safetensors", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(p => new LoraEntry(System.IO.Path.GetFileNameWithoutExtension(p), p, MetadataOf(p)))
            .ToList();

    // The header's __metadata__ (kohya's ss_* training settings); an unreadable file is listed without it, and refused when used.
    private static IReadOnlyDictionary<string, string> MetadataOf(string path)
    {
        try
        {
            using var file = SafeTensorsFile.Open(path);
            return new Dictionary<string, string>(file.Metadata);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or SafeTensorsException or UnauthorizedAccessException)
        {
            return new Dictionary<string, string>();
        }
    }
}

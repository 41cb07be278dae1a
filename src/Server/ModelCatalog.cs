using LatentDiffusion.Onnx;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Server;

/// <summary>A model the server can load: a diffusers folder or a single-file checkpoint.</summary>
/// <param name="Title">AUTOMATIC1111's checkpoint title (the file or folder name), what sd_model_checkpoint names.</param>
/// <param name="ModelName">The name without extension.</param>
/// <param name="Path">Where it is on disk.</param>
public sealed record ModelEntry(string Title, string ModelName, string Path);

/// <summary>
/// The models known to the server: the one it started with and its Stable Diffusion siblings in the same
/// folder (other pipeline folders, other .safetensors files). A client picks one by title or name, never by
/// path, so a request cannot make the server open a file elsewhere.
/// </summary>
public sealed class ModelCatalog
{
    public ModelCatalog(string startModel)
    {
        var full = System.IO.Path.GetFullPath(startModel);
        Start = EntryOf(full);
        var parent = System.IO.Path.GetDirectoryName(System.IO.Path.TrimEndingDirectorySeparator(full));
        var entries = new List<ModelEntry> { Start };
        if (parent is not null && Directory.Exists(parent))
        {
            var siblings = Directory.EnumerateDirectories(parent).Where(IsPipelineFolder)
                .Concat(Directory.EnumerateFiles(parent, "*.safetensors"))
                .Select(EntryOf)
                .Where(e => e.Path != Start.Path)
                .OrderBy(e => e.Title, StringComparer.Ordinal);
            entries.AddRange(siblings);
        }
        Entries = entries;
    }

    /// <summary>The model given at start, first in <see cref="Entries"/>.</summary>
    public ModelEntry Start { get; }

    public IReadOnlyList<ModelEntry> Entries { get; }

    /// <summary>The entry a client named by title or model name.</summary>
    /// <exception cref="ApiException">422 for a name with a path in it or a name no entry has.</exception>
    public ModelEntry Find(string name)
    {
        CheckName(name, "model name", "/sdapi/v1/sd-models");
        var bare = WithoutHash(name);
        return Entries.FirstOrDefault(e => e.Title == bare || e.ModelName == bare)
            ?? throw ApiException.Invalid($"unknown model '{Printable(name)}' (known: {string.Join(", ", Entries.Select(e => e.Title))})");
    }

    /// <summary>Refuses a name with a path in it, checked before any lookup so that the message says why: a path is never a name.</summary>
    /// <exception cref="ApiException">422 naming <paramref name="field"/> and the endpoint that lists the names.</exception>
    public static void CheckName(string name, string field, string listedBy)
    {
        if (name.Contains("..", StringComparison.Ordinal) || name.IndexOfAny(['/', '\\', '\0', ':']) >= 0)
            throw ApiException.Invalid($"{field} '{Printable(name)}' must be a name from {listedBy}, not a path");
    }

    /// <summary>AUTOMATIC1111's titles carry a short hash, "model.safetensors [6ce0161689]"; ours have none, so a client's hash is ignored.</summary>
    public static string WithoutHash(string name) =>
        name.EndsWith(']') && name.LastIndexOf(" [", StringComparison.Ordinal) is > 0 and var at ? name[..at] : name;

    /// <summary>A client's text as one short line of a message.</summary>
    public static string Printable(string text) => text.Length > 80 ? string.Concat(text.AsSpan(0, 80), "…") : text.ReplaceLineEndings(" ");

    private static bool IsPipelineFolder(string directory)
    {
        if (OnnxStableDiffusion.IsOnnxFolder(directory)) return true;
        if (!File.Exists(System.IO.Path.Combine(directory, "model_index.json"))) return false;
        try
        {
            var name = ModelIndex.Load(directory).ClassName;
            return StableDiffusionPipeline.PipelineClasses.Contains(name) || StableDiffusionPipeline.XlPipelineClasses.Contains(name);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return false; // an unreadable sibling is not offered; the started model's own errors surface at load
        }
    }

    private static ModelEntry EntryOf(string path)
    {
        var trimmed = System.IO.Path.TrimEndingDirectorySeparator(path);
        return new ModelEntry(System.IO.Path.GetFileName(trimmed), System.IO.Path.GetFileNameWithoutExtension(trimmed), trimmed);
    }
}

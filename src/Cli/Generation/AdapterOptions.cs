using System.CommandLine;
using System.Globalization;
using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Cli.Generation;

/// <summary>
/// The adapter options of <c>ldm generate</c> / <c>img2img</c>: <c>--lora FILE[:SCALE]</c> (repeatable), <c>--lora-dir DIR</c> for the
/// prompt's <c>&lt;lora:NAME:0.8&gt;</c> tags, <c>--strict-lora</c>, <c>--embedding NAME=FILE</c> (repeatable), <c>--embeddings-dir DIR</c>.
/// Files and folders are checked before the model loads.
/// </summary>
internal sealed class AdapterOptions
{
    public readonly Option<string[]> Lora = new Option<string[]>("--lora") { Description = "A LoRA .safetensors (kohya/AUTOMATIC1111 or diffusers/PEFT) merged at SCALE (default 1); repeatable", Arity = ArgumentArity.ZeroOrMore }.IsPath();
    public readonly Option<string?> LoraDir = new Option<string?>("--lora-dir") { Description = "Folder where the prompt's AUTOMATIC1111 tags <lora:NAME:0.8> find NAME.safetensors" }.IsPath();
    public readonly Option<bool> StrictLora = new("--strict-lora") { Description = "Refuse a LoRA with keys that map to no layer of the model (default: warn and ignore them)" };
    public readonly Option<string[]> Embedding = new Option<string[]>("--embedding") { Description = "A textual-inversion embedding: NAME=FILE.safetensors (NAME is the word to use in prompts) or FILE; repeatable", Arity = ArgumentArity.ZeroOrMore }.IsPath();
    public readonly Option<string?> EmbeddingsDir = new Option<string?>("--embeddings-dir") { Description = "Load every embedding in this folder, each named by its file name" }.IsPath();

    public IEnumerable<Option> All => [Lora, LoraDir, StrictLora, Embedding, EmbeddingsDir];

    /// <summary>The parsed values, with every named file and folder checked to exist.</summary>
    public Parsed Parse(ParseResult parsed)
    {
        var loras = (parsed.GetValue(Lora) ?? []).Select(ParseLora).ToList();
        var embeddings = (parsed.GetValue(Embedding) ?? []).Select(ParseEmbedding).ToList();
        var loraDir = parsed.GetValue(LoraDir);
        var embeddingsDir = parsed.GetValue(EmbeddingsDir);
        foreach (var (option, dir) in new[] { (LoraDir.Name, loraDir), (EmbeddingsDir.Name, embeddingsDir) })
            if (dir is not null && !Directory.Exists(dir)) throw new UsageException($"{option} {dir}: folder not found");
        return new Parsed(loras, loraDir, parsed.GetValue(StrictLora), embeddings, embeddingsDir);
    }

    // FILE or FILE:SCALE; the scale is what follows the last ':' when it is a number (a Windows drive letter is not).
    private LoraRequest ParseLora(string value)
    {
        var colon = value.LastIndexOf(':');
        var (path, scale) = colon > 0 && double.TryParse(value[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var s)
            ? (value[..colon], s)
            : (value, 1.0);
        if (!double.IsFinite(scale)) throw new UsageException($"{Lora.Name} {value}: the scale must be a finite number");
        if (!File.Exists(path)) throw new UsageException($"{Lora.Name} {path}: file not found");
        return new LoraRequest(path, scale);
    }

    private (string? Name, string Path) ParseEmbedding(string value)
    {
        var equals = value.IndexOf('=');
        var (name, path) = equals > 0 ? (value[..equals].Trim(), value[(equals + 1)..]) : ((string?)null, value);
        if (name is { Length: 0 } || name?.Any(char.IsWhiteSpace) == true) throw new UsageException($"{Embedding.Name} {value}: NAME must be one word (NAME=FILE)");
        if (!File.Exists(path)) throw new UsageException($"{Embedding.Name} {path}: file not found");
        return (name, path);
    }

    public sealed record Parsed(IReadOnlyList<LoraRequest> Loras, string? LoraDir, bool Strict, IReadOnlyList<(string? Name, string Path)> Embeddings, string? EmbeddingsDir)
    {
        /// <summary>Sets up the loaded pipeline (embeddings, the LoRA folder) and returns the request with its LoRAs; warnings go to <paramref name="context"/>.</summary>
        public GenerationRequest Apply(StableDiffusionPipeline pipe, GenerationRequest request, CliContext context)
        {
            if (LoraDir is not null) pipe.Loras.Directory = LoraDir; // (the LoRA set exists only for libtorch models)
            foreach (var (name, path) in Embeddings) pipe.Embeddings.Load(path, name);
            if (EmbeddingsDir is not null)
                foreach (var warning in pipe.Embeddings.LoadDirectory(EmbeddingsDir)) context.Warn(warning);
            return request with { Loras = Loras, StrictLoras = Strict };
        }
    }
}

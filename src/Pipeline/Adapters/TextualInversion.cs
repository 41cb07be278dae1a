using System.Security.Cryptography;
using System.Text.RegularExpressions;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Pipeline.Adapters;

/// <summary>A loaded textual-inversion embedding: its name in prompts and the tokens its vectors became (name, name_1, …).</summary>
public sealed record TextualInversionEmbedding(string Name, IReadOnlyList<string> Tokens, string FilePath)
{
    /// <summary>
    /// AUTOMATIC1111's short hash of an embedding ("TI hashes"): the first 12 hex digits of the SHA-256 of the whole file
    /// (its hashes.sha256 without the additional-networks variant that LoRAs use).
    /// </summary>
    public string ShortHash { get; init; } = "";
}

/// <summary>
/// One tokenizer and text encoder an embedding grows: <paramref name="FileKey"/> is the file's tensor for it (SDXL's
/// <c>clip_l</c> / <c>clip_g</c>), null for a Stable Diffusion 1.x/2.x file's one tensor.
/// </summary>
internal sealed record EmbeddingTarget(string? FileKey, Func<ClipTokenizer> Tokenizer, Func<ClipTextModel> TextEncoder);

/// <summary>
/// Textual-inversion embeddings (Gal et al. 2022) as diffusers' load_textual_inversion adds them: an embedding of n vectors
/// becomes the added tokens name, name_1, …, name_{n−1} of the tokenizer and n new rows of the text encoder's token
/// embedding, and every occurrence of name in a prompt is rewritten to "name name_1 …" before tokenising
/// (diffusers' maybe_convert_prompt). Files: AUTOMATIC1111's (<c>emb_params</c> or <c>string_to_param.*</c>, the name is the
/// file's) and diffusers' learned_embeds (one tensor named after its token), safetensors only. SDXL files carry <c>clip_l</c>
/// and <c>clip_g</c> vectors: each goes to its tokenizer and encoder under the same tokens, as diffusers' SDXL recipe calls
/// load_textual_inversion once per encoder.
/// </summary>
public sealed partial class TextualInversions
{
    // The encoders are resolved when an embedding is added: another engine refuses then, not at every request.
    private readonly IReadOnlyList<EmbeddingTarget> targets;
    private readonly Action<IReadOnlyList<ClipTokenizer>> replaceTokenizers;
    private readonly List<TextualInversionEmbedding> loaded = [];
    private readonly Dictionary<string, string> skipped = new(StringComparer.Ordinal);

    internal TextualInversions(IReadOnlyList<EmbeddingTarget> targets, Action<IReadOnlyList<ClipTokenizer>> replaceTokenizers)
    {
        this.targets = targets;
        this.replaceTokenizers = replaceTokenizers;
    }

    public IReadOnlyList<TextualInversionEmbedding> Loaded => loaded;

    /// <summary>The files <see cref="LoadDirectory"/> skipped, by name, with the reason (AUTOMATIC1111's skipped embeddings).</summary>
    public IReadOnlyDictionary<string, string> Skipped => skipped;

    /// <summary>
    /// Adds the embedding in <paramref name="path"/> under <paramref name="name"/> (null: diffusers' token stored in the file,
    /// else the file name). Everything is checked before a tokenizer or a text encoder changes.
    /// </summary>
    public TextualInversionEmbedding Load(string path, string? name = null)
    {
        using var scope = DisposeScope.Enter();
        var (stored, vectors) = Read(path, targets);
        var shortHash = FileShortHash(path);
        name ??= stored ?? Path.GetFileNameWithoutExtension(path);
        var count = vectors[0].Size(0);
        if (vectors.Any(v => v.Size(0) != count))
            throw new InvalidDataException($"{path}: {string.Join(" and ", targets.Select((t, i) => $"{t.FileKey} has {vectors[i].Size(0)} vectors"))}; both parts of an embedding have one vector per token");
        for (int i = 0; i < targets.Count; i++)
        {
            var hidden = targets[i].TextEncoder().Config.HiddenSize;
            if (vectors[i].Size(1) != hidden)
                throw new InvalidDataException($"{path}: the embedding's {(targets[i].FileKey is { } part ? part + " " : "")}vectors have {vectors[i].Size(1)} values but {(targets[i].FileKey is null ? "this" : "their")} text encoder's have {hidden}: it was made for another model");
            Pretrained.RequireFinite(path, [KeyValuePair.Create(targets[i].FileKey ?? name, vectors[i])]);
        }
        var tokens = Enumerable.Range(0, (int)count).Select(i => i == 0 ? name : $"{name}_{i}").ToList();
        ClipTokenizer[] grown;
        try
        {
            grown = [.. targets.Select(t => t.Tokenizer().WithAddedTokens(tokens))];
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: cannot add embedding '{name}': {e.Message.Split(" (Parameter")[0]}", e);
        }
        for (int i = 0; i < targets.Count; i++)
        {
            var first = targets[i].TextEncoder().AddTokenEmbeddings(vectors[i]);
            if (grown[i].TokenToId(name) != first)
                throw new InvalidOperationException($"the tokenizer's next id ({grown[i].TokenToId(name)}) and the text encoder's next row ({first}) disagree");
        }
        replaceTokenizers(grown);
        var embedding = new TextualInversionEmbedding(name, tokens, path) { ShortHash = shortHash };
        loaded.Add(embedding);
        skipped.Remove(name);
        return embedding;
    }

    /// <summary>
    /// Loads every *.safetensors under <paramref name="directory"/> (recursively, in name order) under its file name; a file that
    /// cannot be loaded (another model's, a pickle, a name taken) is skipped with a warning, as AUTOMATIC1111 does.
    /// </summary>
    public IReadOnlyList<string> LoadDirectory(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"{directory}: embeddings directory not found");
        var warnings = new List<string>();
        foreach (var file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var extension = Path.GetExtension(file).ToLowerInvariant();
            if (extension is not (".safetensors" or ".pt" or ".bin")) continue;
            try
            {
                Load(file, Path.GetFileNameWithoutExtension(file));
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException or Torch.SafeTensors.SafeTensorsException)
            {
                skipped[Path.GetFileNameWithoutExtension(file)] = e.Message;
                warnings.Add($"embedding skipped: {e.Message}");
            }
        }
        return warnings;
    }

    // ComfyUI's explicit form "embedding:NAME" names an embedding; a word naming a skipped file is one too.
    [GeneratedRegex(@"\bembedding:([\w.\-]+)", RegexOptions.CultureInvariant)]
    private static partial Regex ExplicitName();

    /// <summary>
    /// The prompt as the tokenizer must see it: each multi-vector name expanded to its tokens (a plain string replace, as
    /// diffusers), <c>embedding:NAME</c> to NAME. Names of no loaded embedding give warnings, not errors (AUTOMATIC1111).
    /// </summary>
    public string Rewrite(string prompt, List<string> warnings)
    {
        prompt = ExplicitName().Replace(prompt, m =>
        {
            var name = m.Groups[1].Value;
            if (loaded.Any(e => e.Name == name)) return name;
            warnings.Add(skipped.TryGetValue(name, out var why) ? $"embedding '{name}' in the prompt is not loaded: {why}" : $"embedding '{name}' in the prompt is not loaded; the text is used as it is");
            return m.Value;
        });
        foreach (var (name, why) in skipped)
            if (Regex.IsMatch(prompt, $@"(?<![\w]){Regex.Escape(name)}(?![\w])")) warnings.Add($"embedding '{name}' in the prompt is not loaded: {why}");
        if (loaded.Count == 0) return prompt;
        var present = targets[0].Tokenizer().Tokenize(prompt).ToHashSet(StringComparer.Ordinal);
        foreach (var e in loaded)
            if (e.Tokens.Count > 1 && present.Contains(e.Name)) prompt = prompt.Replace(e.Name, string.Join(' ', e.Tokens), StringComparison.Ordinal);
        return prompt;
    }

    /// <summary>
    /// The loaded embeddings the (rewritten) prompts use, in the order they first appear: those whose first token is among the
    /// prompts' tokens, as AUTOMATIC1111 records the embeddings it found in the token ids it encoded.
    /// </summary>
    public IReadOnlyList<TextualInversionEmbedding> UsedIn(IEnumerable<string> prompts)
    {
        if (loaded.Count == 0) return [];
        var byName = loaded.ToDictionary(e => e.Name, StringComparer.Ordinal);
        var used = new List<TextualInversionEmbedding>();
        foreach (var prompt in prompts)
            foreach (var token in targets[0].Tokenizer().Tokenize(prompt))
                if (byName.Remove(token, out var embedding)) used.Add(embedding);
        return used;
    }

    /// <summary>
    /// AUTOMATIC1111's "TI hashes" value for the embeddings the prompts use: "name: hash, …" (":" and "," taken out of the
    /// names); null when they use none. A1111 writes the prompt's then the negative prompt's (and repeats a name used in both,
    /// or by both SDXL encoders); here each is listed once, in that order.
    /// </summary>
    public string? HashesField(IEnumerable<string> prompts)
    {
        var used = UsedIn(prompts);
        return used.Count == 0 ? null : string.Join(", ", used.Select(e => $"{e.Name.Replace(":", "").Replace(",", "")}: {e.ShortHash}"));
    }

    private static string FileShortHash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream))[..12];
    }

    /// <summary>
    /// The token name stored in the file (diffusers' learned_embeds; null for AUTOMATIC1111's) and the vectors [n, dim] in
    /// float32, one tensor per target.
    /// </summary>
    private static (string? Name, Tensor[] Vectors) Read(string path, IReadOnlyList<EmbeddingTarget> targets)
    {
        using var file = AdapterFile.Open(path, "embedding");
        var keys = file.Keys;
        if (targets[0].FileKey is not null)
        {
            if (!keys.Contains("clip_l") && !keys.Contains("clip_g"))
                throw new InvalidDataException($"{path}: not an SDXL embedding (no clip_l / clip_g vectors): a Stable Diffusion 1.x/2.x embedding does not fit SDXL's text encoders");
            var missing = targets.FirstOrDefault(t => !keys.Contains(t.FileKey!));
            if (missing is not null) throw new InvalidDataException($"{path}: the SDXL embedding has no {missing.FileKey} vectors");
            return (null, [.. targets.Select(t => Vectors(path, file, t.FileKey!))]);
        }
        string key;
        string? name = null;
        if (keys.FirstOrDefault(k => k.StartsWith("string_to_param.", StringComparison.Ordinal)) is { } a1111) key = a1111;
        else if (keys.Contains("emb_params")) key = "emb_params";
        else if (keys.Contains("clip_l") || keys.Contains("clip_g"))
            throw new InvalidDataException($"{path}: an SDXL embedding (clip_l / clip_g vectors) does not fit this Stable Diffusion 1.x/2.x text encoder");
        else if (keys.Count == 1) (key, name) = (keys[0], keys[0]);
        else throw new InvalidDataException($"{path}: not a textual-inversion embedding: expected emb_params, string_to_param.* or one tensor named after its token, found {keys.Count} tensors");
        return (name, [Vectors(path, file, key)]);
    }

    private static Tensor Vectors(string path, Torch.SafeTensors.SafeTensorsFile file, string key)
    {
        var vectors = file.Load(key, DType.Float32);
        if (vectors.Dim == 1) vectors = vectors.Unsqueeze(0);
        if (vectors.Dim != 2 || vectors.Size(0) == 0)
            throw new InvalidDataException($"{path}: tensor '{key}' is [{string.Join(", ", vectors.Shape)}]; an embedding is [vectors, dimension]");
        return vectors;
    }
}

using System.Text.Json;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// A token that the tokenizer never splits (transformers' <c>AddedToken</c>): the special tokens and
/// the entries of <c>added_tokens_decoder</c>. <see cref="LStrip"/>/<see cref="RStrip"/> swallow the
/// whitespace on that side of the token, as in transformers.
/// </summary>
/// <param name="Id">The id given in <c>added_tokens_decoder</c>; null means "the vocabulary's id".</param>
public sealed record ClipAddedToken(string Content, bool LStrip = false, bool RStrip = false, int? Id = null)
{
    public static implicit operator ClipAddedToken(string content) => new(content);
}

/// <summary>
/// What tokenizer_config.json and special_tokens_map.json say (special tokens, maximum length).
/// Defaults are CLIPTokenizer's: bos <c>&lt;|startoftext|&gt;</c>, eos/unk/pad <c>&lt;|endoftext|&gt;</c>
/// (Stable Diffusion 1.x pads with eos; 2.x's files name "!" as the pad token).
/// </summary>
public sealed record ClipTokenizerConfig
{
    public const string ConfigFileName = "tokenizer_config.json";
    public const string SpecialTokensFileName = "special_tokens_map.json";

    /// <summary>Sequence length including bos and eos (<c>model_max_length</c>; CLIP's context is 77).</summary>
    public int ModelMaxLength { get; init; } = 77;

    public ClipAddedToken BosToken { get; init; } = new(PreTokenizer.StartOfText);
    public ClipAddedToken EosToken { get; init; } = new(PreTokenizer.EndOfText);
    public ClipAddedToken UnkToken { get; init; } = new(PreTokenizer.EndOfText);

    /// <summary>The padding token; null (a config saying <c>"pad_token": null</c>) pads with eos.</summary>
    public ClipAddedToken? PadToken { get; init; } = new(PreTokenizer.EndOfText);

    /// <summary>Further never-split tokens (<c>added_tokens_decoder</c>, <c>additional_special_tokens</c>).</summary>
    public IReadOnlyList<ClipAddedToken> AddedTokens { get; init; } = [];

    /// <summary>
    /// Reads a transformers tokenizer folder's configs; missing files or keys keep the defaults.
    /// special_tokens_map.json wins over tokenizer_config.json, as in <c>from_pretrained</c>.
    /// A <c>model_max_length</c> that is absent or not a sane length (transformers writes 1e30 for
    /// "unlimited") keeps 77, CLIP's context.
    /// </summary>
    public static ClipTokenizerConfig Load(string directory)
    {
        var config = new ClipTokenizerConfig();
        var configPath = Path.Combine(directory, ConfigFileName);
        if (File.Exists(configPath)) config = config.Apply(configPath, readsLength: true);
        var mapPath = Path.Combine(directory, SpecialTokensFileName);
        if (File.Exists(mapPath)) config = config.Apply(mapPath, readsLength: false);
        return config;
    }

    private ClipTokenizerConfig Apply(string path, bool readsLength)
    {
        using var document = TokenizerFiles.ParseJson(path);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new TokenizerFileException(path, 1, "expected a JSON object");
        var config = this;
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            config = property.Name switch
            {
                "model_max_length" when readsLength => config with { ModelMaxLength = ReadLength(value) ?? config.ModelMaxLength },
                "bos_token" => config with { BosToken = ReadToken(path, property) ?? config.BosToken },
                "eos_token" => config with { EosToken = ReadToken(path, property) ?? config.EosToken },
                "unk_token" => config with { UnkToken = ReadToken(path, property) ?? config.UnkToken },
                "pad_token" => config with { PadToken = ReadToken(path, property) },
                "added_tokens_decoder" => config with { AddedTokens = Merge(config.AddedTokens, ReadAddedTokens(path, value)) },
                "additional_special_tokens" when value.ValueKind == JsonValueKind.Array =>
                    config with { AddedTokens = Merge(config.AddedTokens, value.EnumerateArray().Select(v => ReadToken(path, property.Name, v)).OfType<ClipAddedToken>()) },
                _ => config,
            };
        }
        return config;
    }

    private static int? ReadLength(JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && d >= 2 && d <= 1_000_000 ? (int)d : null;

    private static ClipAddedToken? ReadToken(string path, JsonProperty property) => ReadToken(path, property.Name, property.Value);

    private static ClipAddedToken? ReadToken(string path, string key, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return value.GetString() is { Length: > 0 } text ? new ClipAddedToken(text) : null;
            case JsonValueKind.Object when value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String:
                return content.GetString() is { Length: > 0 } text2 ? new ClipAddedToken(text2, Flag(value, "lstrip"), Flag(value, "rstrip")) : null;
            default:
                throw new TokenizerFileException(path, null, $"'{key}' must be a string or an object with a string \"content\"");
        }
    }

    private static IEnumerable<ClipAddedToken> ReadAddedTokens(string path, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object) throw new TokenizerFileException(path, null, "'added_tokens_decoder' must be an object id -> token");
        foreach (var entry in value.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, out var id) || id < 0)
                throw new TokenizerFileException(path, null, $"'added_tokens_decoder' key '{entry.Name}' is not a token id");
            var token = ReadToken(path, "added_tokens_decoder." + entry.Name, entry.Value)
                ?? throw new TokenizerFileException(path, null, $"'added_tokens_decoder.{entry.Name}' is null");
            yield return token with { Id = id };
        }
    }

    private static bool Flag(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    private static IReadOnlyList<ClipAddedToken> Merge(IReadOnlyList<ClipAddedToken> existing, IEnumerable<ClipAddedToken> more)
    {
        var list = existing.ToList();
        foreach (var token in more)
        {
            var index = list.FindIndex(t => t.Content == token.Content);
            if (index >= 0) list[index] = token with { Id = token.Id ?? list[index].Id };
            else list.Add(token);
        }
        return list;
    }
}

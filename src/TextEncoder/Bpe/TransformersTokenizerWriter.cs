using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// Writes a tokenizer folder exactly as transformers' <c>CLIPTokenizer.save_pretrained</c> does
/// (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json), so that both
/// <see cref="ClipTokenizer.FromDirectory"/> and transformers' <c>CLIPTokenizer.from_pretrained</c> load it.
/// </summary>
internal static class TransformersTokenizerWriter
{
    public static void Write(string directory, IReadOnlyDictionary<string, int> vocabulary,
        IReadOnlyList<(string Left, string Right)> merges, ClipTokenizerConfig config)
    {
        Directory.CreateDirectory(directory);
        WriteFile(Path.Combine(directory, ClipTokenizer.VocabularyFileName),
            PythonJson.Serialize(vocabulary.ToDictionary(kv => kv.Key, kv => (object?)kv.Value, StringComparer.Ordinal)) + "\n");

        var mergesText = new StringBuilder("#version: 0.2\n");
        foreach (var (left, right) in merges) mergesText.Append(left).Append(' ').Append(right).Append('\n');
        WriteFile(Path.Combine(directory, ClipTokenizer.MergesFileName), mergesText.ToString());

        WriteFile(Path.Combine(directory, ClipTokenizerConfig.ConfigFileName), PythonJson.Serialize(TokenizerConfig(vocabulary, config)) + "\n");
        WriteFile(Path.Combine(directory, ClipTokenizerConfig.SpecialTokensFileName), PythonJson.Serialize(SpecialTokensMap(config)) + "\n");
    }

    private static Dictionary<string, object?> TokenizerConfig(IReadOnlyDictionary<string, int> vocabulary, ClipTokenizerConfig config)
    {
        var pad = config.PadToken ?? config.EosToken;
        var added = new Dictionary<string, object?>();
        var seen = new HashSet<string>();
        foreach (var token in config.AddedTokens.Concat([config.BosToken, config.EosToken, config.UnkToken, pad]))
        {
            var id = token.Id ?? (vocabulary.TryGetValue(token.Content, out var v) ? v : (int?)null);
            if (id is null || !seen.Add(token.Content)) continue;
            added[id.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)] = AddedToken(token, special: true);
        }
        return new Dictionary<string, object?>
        {
            ["added_tokens_decoder"] = added,
            ["bos_token"] = config.BosToken.Content,
            ["clean_up_tokenization_spaces"] = true,
            ["eos_token"] = config.EosToken.Content,
            ["errors"] = "replace",
            ["model_max_length"] = config.ModelMaxLength,
            ["pad_token"] = pad.Content,
            ["tokenizer_class"] = "CLIPTokenizer",
            ["unk_token"] = config.UnkToken.Content,
        };
    }

    private static Dictionary<string, object?> SpecialTokensMap(ClipTokenizerConfig config) => new()
    {
        ["bos_token"] = AddedToken(config.BosToken, special: null),
        ["eos_token"] = AddedToken(config.EosToken, special: null),
        ["pad_token"] = (config.PadToken ?? config.EosToken).Content,
        ["unk_token"] = AddedToken(config.UnkToken, special: null),
    };

    private static Dictionary<string, object?> AddedToken(ClipAddedToken token, bool? special)
    {
        var entry = new Dictionary<string, object?>
        {
            ["content"] = token.Content,
            ["lstrip"] = token.LStrip,
            ["normalized"] = true,
            ["rstrip"] = token.RStrip,
            ["single_word"] = false,
        };
        if (special is { } s) entry["special"] = s;
        return entry;
    }

    private static void WriteFile(string path, string text)
    {
        // Write then rename, so an interrupted save never leaves a half-written vocabulary behind.
        Torch.AtomicFile.WriteAllText(path, text);
    }
}

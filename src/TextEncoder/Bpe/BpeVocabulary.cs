namespace LatentDiffusion.TextEncoder;

/// <summary>A learned (or loaded) byte-level BPE vocabulary: token → id, merges in rank order, configs.</summary>
public sealed record BpeVocabulary(IReadOnlyDictionary<string, int> Vocabulary, IReadOnlyList<(string Left, string Right)> Merges, ClipTokenizerConfig Config)
{
    /// <summary>
    /// Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json in the exact
    /// format of transformers' <c>save_pretrained</c>; the folder loads with
    /// <see cref="ClipTokenizer.FromDirectory"/> and with transformers' <c>CLIPTokenizer</c>.
    /// </summary>
    public void Save(string directory) => TransformersTokenizerWriter.Write(directory, Vocabulary, Merges, Config);

    public ClipTokenizer CreateTokenizer(ClipTokenizerOptions? options = null) => new(Vocabulary, Merges, Config, options);

    /// <summary>The vocabulary of a loaded tokenizer, e.g. to save it again.</summary>
    public static BpeVocabulary From(ClipTokenizer tokenizer) => new(tokenizer.Vocabulary, tokenizer.Merges, tokenizer.Config);
}

namespace LatentDiffusion.TextEncoder;

public sealed partial class ClipTokenizer
{
    public const string VocabularyFileName = "vocab.json";
    public const string MergesFileName = "merges.txt";

    /// <summary>
    /// Loads a transformers tokenizer folder (a Stable Diffusion model's <c>tokenizer/</c>):
    /// vocab.json, merges.txt and, where present, tokenizer_config.json and special_tokens_map.json.
    /// </summary>
    /// <exception cref="TokenizerFileException">A file is missing or does not parse (the message names file and line).</exception>
    public static ClipTokenizer FromDirectory(string directory, ClipTokenizerOptions? options = null)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"tokenizer folder not found: {directory}");
        return FromFiles(Path.Combine(directory, VocabularyFileName), Path.Combine(directory, MergesFileName),
            ClipTokenizerConfig.Load(directory), options);
    }

    /// <summary>Loads vocab.json + merges.txt with the given (or CLIP's default) special tokens.</summary>
    public static ClipTokenizer FromFiles(string vocabularyPath, string mergesPath, ClipTokenizerConfig? config = null, ClipTokenizerOptions? options = null)
    {
        RequireFile(vocabularyPath);
        RequireFile(mergesPath);
        return new ClipTokenizer(TokenizerFiles.ReadVocabulary(vocabularyPath), TokenizerFiles.ReadMerges(mergesPath), config, options);
    }

    /// <summary>
    /// Loads OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c>, building the vocabulary as CLIP does
    /// (byte symbols, the same with '&lt;/w&gt;', the first 48894 merges, the two specials).
    /// Uses OpenAI's text clean-up (HTML unescaping) unless <paramref name="options"/> says otherwise.
    /// </summary>
    public static ClipTokenizer FromOpenAiBpe(string gzipPath, ClipTokenizerConfig? config = null, ClipTokenizerOptions? options = null)
    {
        RequireFile(gzipPath);
        var (vocabulary, merges) = TokenizerFiles.ReadOpenAiBpe(gzipPath);
        return new ClipTokenizer(vocabulary, merges, config, options ?? ClipTokenizerOptions.OpenAI);
    }

    private static void RequireFile(string path)
    {
        if (!File.Exists(path)) throw new TokenizerFileException(path, null, "file not found");
    }
}

namespace LatentDiffusion.TextEncoder;

/// <summary>Behaviour switches of <see cref="ClipTokenizer"/> (what the files say is in <see cref="ClipTokenizerConfig"/>).</summary>
public sealed record ClipTokenizerOptions
{
    /// <summary>transformers without ftfy (default) or OpenAI's original clean-up with HTML unescaping.</summary>
    public ClipTextCleaning Cleaning { get; init; } = ClipTextCleaning.Transformers;

    /// <summary>Pre-tokens whose BPE result is remembered (0: no cache); the cache is emptied when it grows past this.</summary>
    public int CacheCapacity { get; init; } = 100_000;

    public static ClipTokenizerOptions Default { get; } = new();

    /// <summary>OpenAI's simple_tokenizer behaviour, the default for the .gz vocabulary.</summary>
    public static ClipTokenizerOptions OpenAI { get; } = new() { Cleaning = ClipTextCleaning.OpenAI };
}

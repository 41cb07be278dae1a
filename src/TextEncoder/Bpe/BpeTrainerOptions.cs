namespace LatentDiffusion.TextEncoder;

/// <summary>Settings of <see cref="BpeTrainer"/>.</summary>
public sealed record BpeTrainerOptions
{
    /// <summary>
    /// Target size of the vocabulary, counting the 512 byte-level symbols (each byte, alone and with
    /// '&lt;/w&gt;') and the two specials; training stops earlier when no pair is frequent enough.
    /// </summary>
    public int VocabularySize { get; init; } = 4096;

    /// <summary>A pair seen fewer times than this is never merged.</summary>
    public int MinPairFrequency { get; init; } = 2;

    /// <summary>The clean-up applied to corpus lines; use the one the tokenizer will use.</summary>
    public ClipTextCleaning Cleaning { get; init; } = ClipTextCleaning.Transformers;

    /// <summary>Special tokens and maximum length written to the tokenizer configs.</summary>
    public ClipTokenizerConfig Config { get; init; } = new();
}

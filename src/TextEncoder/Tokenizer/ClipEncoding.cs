namespace LatentDiffusion.TextEncoder;

/// <summary>
/// One tokenised sequence of exactly <c>ModelMaxLength</c> (77) ids, as transformers returns for
/// <c>tokenizer(text, padding="max_length", max_length=77, truncation=True)</c>:
/// bos, the tokens (cut to 75 when longer), eos, then the pad token.
/// </summary>
/// <param name="InputIds">The 77 ids.</param>
/// <param name="AttentionMask">1 for bos, tokens and eos; 0 for padding.</param>
/// <param name="Weights">
/// Per-position emphasis from the prompt-weighting syntax, aligned with <paramref name="InputIds"/>
/// (1.0 for bos, eos, padding and unweighted text). The text model multiplies hidden states by
/// these and restores the original mean (AUTOMATIC1111's method).
/// </param>
/// <param name="UntruncatedIds">bos + every token + eos, neither truncated nor padded.</param>
/// <param name="DroppedTokenCount">How many tokens truncation removed (0 when the prompt fitted).</param>
public sealed record ClipEncoding(int[] InputIds, int[] AttentionMask, float[] Weights, int[] UntruncatedIds, int DroppedTokenCount)
{
    /// <summary>The prompt was longer than the context and lost <see cref="DroppedTokenCount"/> tokens: worth a warning.</summary>
    public bool Truncated => DroppedTokenCount > 0;

    /// <summary>Number of real (non-padding) positions.</summary>
    public int Length => AttentionMask.Count(m => m != 0);

    /// <summary>The ids as int64, the dtype the text model's embedding takes.</summary>
    public long[] InputIdsInt64() => Array.ConvertAll(InputIds, id => (long)id);
}

/// <summary>How <see cref="ClipTokenizer.EncodePrompt"/> treats prompts longer than the context.</summary>
public enum LongPromptMode
{
    /// <summary>Keep the first 75 tokens (transformers/diffusers); the result says what was dropped.</summary>
    Truncate,

    /// <summary>
    /// AUTOMATIC1111: split into 75-token chunks, each wrapped in bos/eos and padded to 77; the text
    /// model encodes every row and concatenates the hidden states along the sequence.
    /// </summary>
    Chunk,
}

/// <summary>Options of <see cref="ClipTokenizer.EncodePrompt"/>.</summary>
public sealed record PromptEncodingOptions
{
    /// <summary>Parse AUTOMATIC1111 emphasis: <c>(word:1.3)</c>, <c>(word)</c> ×1.1, <c>[word]</c> ÷1.1, <c>\(</c> escapes, <c>BREAK</c>.</summary>
    public bool ParseWeights { get; init; } = true;

    public LongPromptMode LongPrompt { get; init; } = LongPromptMode.Truncate;

    /// <summary>
    /// Chunk mode: when a chunk fills up and a comma lies within this many tokens of its end, the
    /// text after the comma moves to the next chunk (AUTOMATIC1111's "comma padding backtrack",
    /// 20 there). 0 cuts at exactly 75 tokens.
    /// </summary>
    public int CommaBacktrack { get; init; }
}

/// <summary>A prompt as one or more 77-id rows (several only in <see cref="LongPromptMode.Chunk"/> mode).</summary>
/// <param name="Rows">The rows; each row's <see cref="ClipEncoding.UntruncatedIds"/> are that row's own ids.</param>
/// <param name="UntruncatedIds">bos + every token of the prompt + eos.</param>
/// <param name="DroppedTokenCount">Tokens lost to truncation (always 0 when chunking).</param>
public sealed record PromptEncoding(IReadOnlyList<ClipEncoding> Rows, int[] UntruncatedIds, int DroppedTokenCount)
{
    public bool Truncated => DroppedTokenCount > 0;
}

using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// Checks, when a pipeline is assembled, that a tokenizer's ids and sequence length fit the text encoder they feed.
/// A mismatch would otherwise surface at the first prompt as libtorch's "index out of range in self".
/// </summary>
public static class TokenizerFit
{
    /// <param name="tokenizerSource">Where the tokenizer came from (its folder or file), for the message.</param>
    /// <param name="configSource">Where the text encoder's config came from (its config.json), for the message.</param>
    public static void Check(ClipTokenizer tokenizer, ClipTextConfig config, string tokenizerSource, string configSource)
    {
        int max = tokenizer.MaxTokenId, min = tokenizer.MinTokenId;
        if (min < 0)
            throw new ConfigException($"{tokenizerSource}: token '{tokenizer.IdToToken(min)}' has the negative id {min}");
        if (max >= config.VocabSize)
        {
            var token = tokenizer.IdToToken(max);
            // A special token that vocab.json lacks gets the next free id (transformers' _add_tokens): say where it came from.
            var origin = token is not null && !tokenizer.Vocabulary.ContainsKey(token)
                ? $", a special or added token of {ClipTokenizerConfig.ConfigFileName} / {ClipTokenizerConfig.SpecialTokensFileName} that vocab.json lacks"
                : "";
            throw new ConfigException($"{configSource}: field 'vocab_size' ({config.VocabSize}) is too small for the tokenizer in {tokenizerSource}, " +
                $"whose ids reach {max} ('{token}'{origin}); the text encoder needs vocab_size > {max}");
        }
        if (tokenizer.ModelMaxLength > config.MaxPositionEmbeddings)
            throw new ConfigException($"{configSource}: field 'max_position_embeddings' ({config.MaxPositionEmbeddings}) is smaller than " +
                $"the model_max_length ({tokenizer.ModelMaxLength}) of the tokenizer in {tokenizerSource}");
    }
}

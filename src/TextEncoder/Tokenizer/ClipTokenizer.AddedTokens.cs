namespace LatentDiffusion.TextEncoder;

// Adding tokens after loading (transformers' tokenizer.add_tokens), e.g. for textual-inversion embeddings.
public sealed partial class ClipTokenizer
{
    /// <summary>
    /// A tokenizer that also knows <paramref name="tokens"/> as added tokens: never split, cut out of the text before BPE
    /// (the leftmost, then longest, match, as transformers' trie), with the ids <see cref="MaxTokenId"/> + 1, + 2, … in order
    /// (transformers gives a new token the id len(tokenizer)). This tokenizer is not changed.
    /// </summary>
    /// <exception cref="ArgumentException">A token that is empty, repeated, or already a token of the vocabulary or an added token.</exception>
    public ClipTokenizer WithAddedTokens(IReadOnlyList<string> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var next = MaxTokenId + 1;
        var added = new List<ClipAddedToken>(tokens.Count);
        foreach (var token in tokens)
        {
            if (string.IsNullOrWhiteSpace(token)) throw new ArgumentException("an added token must not be empty or blank", nameof(tokens));
            if (vocabulary.ContainsKey(token) || fixedTokens.Any(t => t.Content == token) || added.Any(t => t.Content == token))
                throw new ArgumentException($"'{token}' is already a token of this tokenizer; choose another name", nameof(tokens));
            added.Add(new ClipAddedToken(token, Id: next++));
        }
        return new ClipTokenizer(vocabulary, merges, Config with { AddedTokens = [.. Config.AddedTokens, .. added] }, Options);
    }

    /// <summary>Whether <paramref name="token"/> is an added (never-split) token, special tokens included.</summary>
    public bool IsAddedToken(string token) => fixedTokens.Take(noSplitCount).Any(t => t.Content == token);
}

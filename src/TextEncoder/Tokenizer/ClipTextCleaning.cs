namespace LatentDiffusion.TextEncoder;

/// <summary>Which reference implementation's text clean-up the tokenizer reproduces.</summary>
public enum ClipTextCleaning
{
    /// <summary>
    /// transformers' <c>CLIPTokenizer</c> (the slow tokenizer diffusers uses) as installed without
    /// the optional ftfy package, which is what a default diffusers + transformers install runs:
    /// its <c>BasicTokenizer</c> fallback drops control characters, puts spaces around CJK
    /// ideographs, applies NFC, collapses whitespace and lower-cases. HTML entities stay as typed.
    /// Added/special tokens typed in the text (<c>&lt;|endoftext|&gt;</c>, and the pad token) are
    /// split off before clean-up, as transformers' added-token trie does. This is the variant the
    /// goldens call <c>noftfy</c>.
    /// </summary>
    Transformers,

    /// <summary>
    /// OpenAI's original <c>simple_tokenizer.py</c>: <c>ftfy.fix_text</c> approximated by NFC,
    /// HTML entities unescaped twice, whitespace collapsed, lower-cased; special tokens are
    /// recognised only by the pre-tokenisation pattern. Used by default for
    /// <c>bpe_simple_vocab_16e6.txt.gz</c>.
    /// </summary>
    OpenAI,
}

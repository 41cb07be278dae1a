using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// CLIP's byte-level BPE tokenizer, reproducing transformers' slow <c>CLIPTokenizer</c> (what
/// diffusers' Stable Diffusion pipelines call) id for id.
/// <para>
/// Variant matched: transformers <b>without ftfy</b> (<see cref="ClipTextCleaning.Transformers"/>,
/// the goldens' <c>noftfy</c>), which is what a default install runs. With ftfy installed,
/// transformers would also straighten curly quotes, unfold ligatures and full-width forms, and
/// not split CJK ideographs; those prompts tokenise differently there. HTML entities are not
/// unescaped (transformers does not); <see cref="ClipTextCleaning.OpenAI"/> gives OpenAI's
/// original behaviour, which does, and is the default for the .gz vocabulary.
/// </para>
/// <para>Thread-safe after construction.</para>
/// </summary>
public sealed partial class ClipTokenizer
{
    private readonly BpeModel bpe;
    private readonly Dictionary<string, int> vocabulary;
    private readonly List<(string Left, string Right)> merges;
    private readonly Dictionary<int, string> idToToken = [];
    private readonly int[] symbolToId;

    // Tokens with a fixed id, addressed by negative codes in token streams: the never-split added
    // tokens first (their index in `noSplitCount`), then CLIP's two specials as the regex yields them.
    private readonly List<(string Content, int Id, bool LStrip, bool RStrip)> fixedTokens = [];
    private readonly int noSplitCount;
    private readonly int startOfTextCode, endOfTextCode;
    private readonly HashSet<int> specialIds;
    // Added tokens that are not CLIP's specials: cut out of the text in OpenAI's cleaning mode too.
    private readonly HashSet<string> plainAddedTokens;

    /// <summary>Builds a tokenizer from an in-memory vocabulary and merge list (rank = index).</summary>
    public ClipTokenizer(IReadOnlyDictionary<string, int> vocabulary, IEnumerable<(string Left, string Right)> merges,
        ClipTokenizerConfig? config = null, ClipTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        ArgumentNullException.ThrowIfNull(merges);
        Config = config ?? new ClipTokenizerConfig();
        Options = options ?? ClipTokenizerOptions.Default;
        if (Config.ModelMaxLength < 2) throw new ArgumentException("model_max_length must leave room for bos and eos", nameof(config));
        foreach (var special in new[] { Config.BosToken, Config.EosToken, Config.UnkToken })
        {
            if (string.IsNullOrEmpty(special.Content)) throw new ArgumentException("bos, eos and unk tokens must not be empty", nameof(config));
        }

        this.vocabulary = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        this.merges = [.. merges];
        bpe = new BpeModel(this.merges, Options.CacheCapacity);
        foreach (var (token, id) in this.vocabulary) idToToken[id] = token;

        // Added tokens: explicit ids first, then the special tokens and id-less added tokens take
        // their vocabulary id or, if absent, the next free id (transformers' _add_tokens).
        var nextId = Math.Max(this.vocabulary.Values.DefaultIfEmpty(-1).Max(), Config.AddedTokens.Select(t => t.Id ?? -1).DefaultIfEmpty(-1).Max()) + 1;
        var specials = new[] { Config.BosToken, Config.EosToken, Config.UnkToken, Config.PadToken ?? Config.EosToken };
        foreach (var token in Config.AddedTokens.Where(t => t.Id is not null).Concat(specials).Concat(Config.AddedTokens.Where(t => t.Id is null)))
        {
            if (string.IsNullOrEmpty(token.Content) || fixedTokens.Any(t => t.Content == token.Content)) continue;
            var id = token.Id ?? (this.vocabulary.TryGetValue(token.Content, out var v) ? v : nextId++);
            fixedTokens.Add((token.Content, id, token.LStrip, token.RStrip));
            idToToken[id] = token.Content;
        }
        noSplitCount = fixedTokens.Count;
        BosTokenId = IdOfFixed(Config.BosToken.Content);
        EosTokenId = IdOfFixed(Config.EosToken.Content);
        UnkTokenId = IdOfFixed(Config.UnkToken.Content);
        PadTokenId = string.IsNullOrEmpty(Config.PadToken?.Content) ? EosTokenId : IdOfFixed(Config.PadToken.Content);
        specialIds = [BosTokenId, EosTokenId, UnkTokenId, PadTokenId];
        string?[] specialContents = [.. specials.Select(t => t?.Content), PreTokenizer.StartOfText, PreTokenizer.EndOfText];
        plainAddedTokens = [.. Config.AddedTokens.Select(t => t.Content).Where(c => !string.IsNullOrEmpty(c) && !specialContents.Contains(c))];
        startOfTextCode = FixedCode(PreTokenizer.StartOfText);
        endOfTextCode = FixedCode(PreTokenizer.EndOfText);

        symbolToId = new int[bpe.Symbols.Count];
        for (var s = 0; s < symbolToId.Length; s++) symbolToId[s] = IdOf(bpe.Symbols[s]);
    }

    public ClipTokenizerConfig Config { get; }
    public ClipTokenizerOptions Options { get; }

    /// <summary>Sequence length including bos and eos (77 for CLIP).</summary>
    public int ModelMaxLength => Config.ModelMaxLength;

    public int BosTokenId { get; }
    public int EosTokenId { get; }
    public int UnkTokenId { get; }
    public int PadTokenId { get; }

    /// <summary>The largest id the tokenizer can emit (vocabulary and added tokens); the text encoder's table must be larger.</summary>
    public int MaxTokenId => idToToken.Keys.DefaultIfEmpty(-1).Max();

    /// <summary>The smallest id the tokenizer can emit; a negative one indexes no embedding table.</summary>
    public int MinTokenId => idToToken.Keys.DefaultIfEmpty(0).Min();

    /// <summary>Size of vocab.json (transformers' <c>vocab_size</c>).</summary>
    public int VocabularySize => vocabulary.Count;

    public IReadOnlyDictionary<string, int> Vocabulary => vocabulary;

    /// <summary>The merges in rank order.</summary>
    public IReadOnlyList<(string Left, string Right)> Merges => merges;

    /// <summary>The id of a token string: added tokens first, then the vocabulary, else the unknown token.</summary>
    public int TokenToId(string token)
    {
        for (var k = 0; k < fixedTokens.Count; k++) if (fixedTokens[k].Content == token) return fixedTokens[k].Id;
        return vocabulary.TryGetValue(token, out var id) ? id : UnkTokenId;
    }

    public string? IdToToken(int id) => idToToken.GetValueOrDefault(id);

    /// <summary>BPE token strings of <paramref name="text"/>, without bos/eos (transformers' <c>tokenize</c>).</summary>
    public IReadOnlyList<string> Tokenize(string text) =>
        TokenCodes(text).Select(code => code >= 0 ? bpe.Symbols[code] : fixedTokens[-code - 1].Content).ToList();

    /// <summary>Token ids of <paramref name="text"/>, without bos/eos (transformers' <c>encode(add_special_tokens=False)</c>).</summary>
    public int[] EncodeIds(string text)
    {
        var codes = TokenCodes(text);
        var ids = new int[codes.Count];
        for (var i = 0; i < ids.Length; i++) ids[i] = IdOfCode(codes[i]);
        return ids;
    }

    /// <summary>
    /// bos + tokens + eos, truncated to <see cref="ModelMaxLength"/> (eos kept last) and padded
    /// with the pad token: exactly what diffusers feeds the text encoder.
    /// </summary>
    public ClipEncoding Encode(string text) => Encode(text, ModelMaxLength);

    /// <inheritdoc cref="Encode(string)"/>
    public ClipEncoding Encode(string text, int maxLength)
    {
        var ids = EncodeIds(text);
        return Pack(ids, null, maxLength);
    }

    /// <summary>
    /// Text of token ids, as transformers' <c>convert_tokens_to_string</c>: bytes decoded as UTF-8
    /// (invalid sequences become U+FFFD), '&lt;/w&gt;' read as a space, ends stripped. Unknown ids are
    /// skipped; <paramref name="skipSpecialTokens"/> drops bos/eos/unk/pad.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var id in ids)
        {
            if (skipSpecialTokens && specialIds.Contains(id)) continue;
            if (!idToToken.TryGetValue(id, out var token)) continue;
            foreach (var c in token)
            {
                if (ByteLevelAlphabet.TryGetByte(c, out var b)) bytes.Add(b);
                else bytes.AddRange(utf8[..Encoding.UTF8.GetBytes([c], utf8)].ToArray());
            }
        }
        var text = Encoding.UTF8.GetString(bytes.ToArray()).Replace(ByteLevelAlphabet.EndOfWord, " ", StringComparison.Ordinal);
        return text.Trim();
    }

    /// <summary>bos + tokens + eos, cut to maxLength keeping eos last, padded; weights aligned (1 for bos/eos/pad).</summary>
    private ClipEncoding Pack(IReadOnlyList<int> tokens, IReadOnlyList<float>? weights, int maxLength)
    {
        if (maxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "must leave room for bos and eos");
        var keep = Math.Min(tokens.Count, maxLength - 2);
        var inputIds = new int[maxLength];
        var mask = new int[maxLength];
        var rowWeights = new float[maxLength];
        Array.Fill(inputIds, PadTokenId);
        Array.Fill(rowWeights, 1f);
        inputIds[0] = BosTokenId;
        for (var i = 0; i < keep; i++)
        {
            inputIds[i + 1] = tokens[i];
            if (weights is not null) rowWeights[i + 1] = weights[i];
        }
        inputIds[keep + 1] = EosTokenId;
        Array.Fill(mask, 1, 0, keep + 2);

        var untruncated = new int[tokens.Count + 2];
        untruncated[0] = BosTokenId;
        for (var i = 0; i < tokens.Count; i++) untruncated[i + 1] = tokens[i];
        untruncated[^1] = EosTokenId;
        return new ClipEncoding(inputIds, mask, rowWeights, untruncated, tokens.Count - keep);
    }

    // Token stream as codes: >= 0 a BPE symbol id, < 0 a fixed token (-(index + 1)).
    private List<int> TokenCodes(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var codes = new List<int>(text.Length / 3 + 4);
        // OpenAI's tokenizer cuts out no special token typed in the text, but added tokens (textual inversion's) are cut out in both modes.
        foreach (var (piece, fixedIndex) in SplitOnAddedTokens(text, specials: Options.Cleaning == ClipTextCleaning.Transformers))
        {
            if (fixedIndex >= 0) codes.Add(-fixedIndex - 1);
            else AppendBpe(piece, codes);
        }
        return codes;
    }

    private void AppendBpe(string text, List<int> codes)
    {
        var cleaned = TextCleaner.Clean(text, Options.Cleaning);
        foreach (var preToken in PreTokenizer.Split(cleaned))
        {
            // transformers' bpe cache starts with the two specials mapping to themselves.
            if (preToken == PreTokenizer.StartOfText) codes.Add(startOfTextCode);
            else if (preToken == PreTokenizer.EndOfText) codes.Add(endOfTextCode);
            else codes.AddRange(bpe.Encode(preToken));
        }
    }

    /// <summary>
    /// transformers' added-token trie: the leftmost, then longest, occurrence of a never-split
    /// token is cut out (so a typed <c>&lt;|endoftext|&gt;</c> stays whole even after "!!", and an SD2
    /// pad token "!" always becomes id 0 — diffusers issue 4153); lstrip/rstrip eat neighbouring spaces.
    /// </summary>
    private List<(string Piece, int FixedIndex)> SplitOnAddedTokens(string text, bool specials)
    {
        if (!specials && plainAddedTokens.Count == 0) return [(text, -1)];
        var pieces = new List<(string Piece, int FixedIndex)>();
        var textStart = 0;
        var pos = 0;
        while (pos < text.Length)
        {
            var best = -1;
            for (var k = 0; k < noSplitCount; k++)
            {
                var content = fixedTokens[k].Content;
                if (!specials && !plainAddedTokens.Contains(content)) continue;
                if ((best < 0 || content.Length > fixedTokens[best].Content.Length) && text.AsSpan(pos).StartsWith(content, StringComparison.Ordinal)) best = k;
            }
            if (best < 0)
            {
                pos++;
                continue;
            }
            pieces.Add((text[textStart..pos], -1));
            pieces.Add((fixedTokens[best].Content, best));
            pos += fixedTokens[best].Content.Length;
            textStart = pos;
        }
        pieces.Add((text[textStart..], -1));

        for (var i = 0; i < pieces.Count; i++)
        {
            if (pieces[i].FixedIndex < 0) continue;
            var token = fixedTokens[pieces[i].FixedIndex];
            if (token.RStrip && i + 1 < pieces.Count) pieces[i + 1] = (pieces[i + 1].Piece.TrimStart(), -1);
            if (token.LStrip && i > 0) pieces[i - 1] = (pieces[i - 1].Piece.TrimEnd(), -1);
        }
        pieces.RemoveAll(p => p.FixedIndex < 0 && p.Piece.Length == 0);
        return pieces;
    }

    private int IdOfCode(int code) => code >= 0 ? symbolToId[code] : fixedTokens[-code - 1].Id;

    private int IdOf(string token) => TokenToId(token);

    private int IdOfFixed(string content) => fixedTokens.First(t => t.Content == content).Id;

    // Code of a token string the pre-tokenizer can yield; added as a fixed token if not already one.
    private int FixedCode(string content)
    {
        var index = fixedTokens.FindIndex(t => t.Content == content);
        if (index < 0)
        {
            index = fixedTokens.Count;
            fixedTokens.Add((content, vocabulary.TryGetValue(content, out var id) ? id : UnkTokenId, false, false));
        }
        return -index - 1;
    }
}

using System.Collections.Concurrent;
using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// Byte-level BPE with CLIP's end-of-word convention, as transformers' <c>CLIPTokenizer.bpe</c>:
/// a pre-token's bytes become alphabet symbols, the last one suffixed with '&lt;/w&gt;', then the
/// adjacent pair with the lowest merge rank is merged (every occurrence, left to right) until no
/// ranked pair remains. Symbols are interned as ints so the hot loop compares integers, and results
/// are cached per pre-token (prompts repeat words a lot).
/// </summary>
internal sealed class BpeModel
{
    private readonly Dictionary<string, int> symbolIds = new(StringComparer.Ordinal);
    private readonly List<string> symbols = [];
    private readonly Dictionary<long, (int Rank, int Result)> merges = [];
    private readonly int[] byteSymbol = new int[256];
    private readonly int[] finalByteSymbol = new int[256];
    private readonly ConcurrentDictionary<string, int[]> cache = new(StringComparer.Ordinal);
    private readonly int cacheCapacity;

    /// <param name="mergeList">Merges in rank order; a pair listed twice keeps its last rank (as a Python dict does).</param>
    public BpeModel(IReadOnlyCollection<(string Left, string Right)> mergeList, int cacheCapacity = 100_000)
    {
        symbolIds.EnsureCapacity(2 * mergeList.Count + 512);
        merges.EnsureCapacity(mergeList.Count);
        this.cacheCapacity = cacheCapacity;
        for (var b = 0; b < 256; b++)
        {
            byteSymbol[b] = Intern(ByteLevelAlphabet.ByteToChar[b].ToString());
            finalByteSymbol[b] = Intern(ByteLevelAlphabet.ByteToChar[b] + ByteLevelAlphabet.EndOfWord);
        }
        var rank = 0;
        foreach (var (left, right) in mergeList)
        {
            var l = Intern(left);
            var r = Intern(right);
            merges[Key(l, r)] = (rank++, Intern(left + right));
        }
        MergeCount = rank;
    }

    /// <summary>Number of merge lines read (duplicates included).</summary>
    public int MergeCount { get; }

    /// <summary>Every symbol the model can produce, indexed by symbol id.</summary>
    public IReadOnlyList<string> Symbols => symbols;

    /// <summary>BPE symbol ids of one (non-empty) pre-token, from its UTF-8 bytes.</summary>
    public int[] Encode(string preToken)
    {
        if (cache.TryGetValue(preToken, out var cached)) return cached;
        var utf8 = Encoding.UTF8.GetBytes(preToken);
        var word = new int[utf8.Length];
        for (var i = 0; i < utf8.Length - 1; i++) word[i] = byteSymbol[utf8[i]];
        word[^1] = finalByteSymbol[utf8[^1]];
        var result = Merge(word);
        if (cacheCapacity <= 0) return result;
        if (cache.Count >= cacheCapacity) cache.Clear(); // bounded: a long-running server sees unbounded vocabularies
        cache[preToken] = result;
        return result;
    }

    /// <summary>
    /// Applies the merges to a symbol sequence: repeatedly the lowest-ranked adjacent pair, every
    /// occurrence left to right without overlap (transformers' loop). Ranks are unique per pair, so
    /// "has the best rank" identifies the pair; each pass looks up only the pairs it created.
    /// </summary>
    public int[] Merge(int[] symbols)
    {
        var n = symbols.Length;
        if (n < 2) return symbols;
        var ranks = new int[n - 1];
        var results = new int[n - 1];
        var merged = new bool[n];
        var origin = new int[n];
        for (var i = 0; i < n - 1; i++) (ranks[i], results[i]) = Lookup(symbols[i], symbols[i + 1]);
        while (n > 1)
        {
            var best = int.MaxValue;
            for (var i = 0; i < n - 1; i++) if (ranks[i] < best) best = ranks[i];
            if (best == int.MaxValue) break;

            var write = 0;
            for (var read = 0; read < n; write++)
            {
                origin[write] = read;
                merged[write] = read < n - 1 && ranks[read] == best;
                symbols[write] = merged[write] ? results[read] : symbols[read];
                read += merged[write] ? 2 : 1;
            }
            // Increasing j only reads ranks[origin[j]] with origin[j] >= j, so updating in place is safe.
            for (var j = 0; j < write - 1; j++)
            {
                if (!merged[j] && !merged[j + 1]) (ranks[j], results[j]) = (ranks[origin[j]], results[origin[j]]);
                else (ranks[j], results[j]) = Lookup(symbols[j], symbols[j + 1]);
            }
            n = write;
        }
        return n == symbols.Length ? symbols : symbols[..n];
    }

    private (int Rank, int Result) Lookup(int left, int right) =>
        merges.TryGetValue(Key(left, right), out var m) ? m : (int.MaxValue, -1);

    private int Intern(string symbol)
    {
        if (symbolIds.TryGetValue(symbol, out var id)) return id;
        id = symbols.Count;
        symbols.Add(symbol);
        symbolIds[symbol] = id;
        return id;
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;
}

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
        var word = new List<int>(utf8.Length);
        for (var i = 0; i < utf8.Length - 1; i++) word.Add(byteSymbol[utf8[i]]);
        word.Add(finalByteSymbol[utf8[^1]]);
        Merge(word);
        var result = word.ToArray();
        if (cacheCapacity <= 0) return result;
        if (cache.Count >= cacheCapacity) cache.Clear(); // bounded: a long-running server sees unbounded vocabularies
        cache[preToken] = result;
        return result;
    }

    /// <summary>Applies the merges to a symbol sequence in place.</summary>
    public void Merge(List<int> word)
    {
        while (word.Count > 1)
        {
            var bestRank = int.MaxValue;
            var best = (Left: -1, Right: -1, Result: -1);
            for (var i = 0; i < word.Count - 1; i++)
            {
                if (merges.TryGetValue(Key(word[i], word[i + 1]), out var m) && m.Rank < bestRank)
                {
                    bestRank = m.Rank;
                    best = (word[i], word[i + 1], m.Result);
                }
            }
            if (best.Result < 0) return;
            var write = 0;
            for (var read = 0; read < word.Count; write++)
            {
                if (read < word.Count - 1 && word[read] == best.Left && word[read + 1] == best.Right)
                {
                    word[write] = best.Result;
                    read += 2;
                }
                else
                {
                    word[write] = word[read++];
                }
            }
            word.RemoveRange(write, word.Count - write);
        }
    }

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

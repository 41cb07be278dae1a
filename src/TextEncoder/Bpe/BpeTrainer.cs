using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// Learns CLIP-style byte-level BPE merges from a text corpus: the same clean-up and
/// pre-tokenisation as <see cref="ClipTokenizer"/>, UTF-8 bytes as the 256-symbol base alphabet,
/// '&lt;/w&gt;' on the last symbol of each pre-token. Each step merges the most frequent adjacent
/// pair (counted over pre-tokens weighted by how often they occur) everywhere it occurs.
/// <para>
/// Deterministic: ties are broken by the pair's left symbol, then right symbol, in ordinal
/// (UTF-16 code unit) order of their byte-level strings — the result never depends on corpus
/// order beyond the counts, nor on hashing.
/// </para>
/// The vocabulary is laid out as CLIP's: ids 0..255 the byte symbols (GPT-2 order), 256..511 the
/// same with '&lt;/w&gt;', then each merge's new string in merge order, then <c>&lt;|startoftext|&gt;</c>
/// and <c>&lt;|endoftext|&gt;</c>. A merge whose string already exists (two different pairs
/// spelling the same text) is recorded without a new id, as Hugging Face's trainer does.
/// </summary>
public sealed class BpeTrainer(BpeTrainerOptions? options = null)
{
    private const int BaseSymbolCount = 512;

    public BpeTrainerOptions Options { get; } = options ?? new BpeTrainerOptions();

    public BpeVocabulary Train(IEnumerable<string> corpus)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        var specials = new[] { PreTokenizer.StartOfText, PreTokenizer.EndOfText };
        if (Options.VocabularySize < BaseSymbolCount + specials.Length)
            throw new ArgumentException($"VocabularySize must be at least {BaseSymbolCount + specials.Length} (byte symbols and specials)");

        var state = new TrainingState(CountWords(corpus));
        var merges = new List<(string Left, string Right)>();
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var symbol in ByteLevelAlphabet.BaseSymbols()) vocabulary[symbol] = vocabulary.Count;

        while (vocabulary.Count + specials.Length < Options.VocabularySize && state.TryTakeBest(Options.MinPairFrequency, out var left, out var right))
        {
            var merged = state.Merge(left, right);
            merges.Add((state.Symbols[left], state.Symbols[right]));
            vocabulary.TryAdd(state.Symbols[merged], vocabulary.Count);
        }
        foreach (var special in specials) vocabulary.TryAdd(special, vocabulary.Count);
        return new BpeVocabulary(vocabulary, merges, Options.Config);
    }

    // Pre-token → occurrences, after the tokenizer's clean-up; typed special tokens are not learned from.
    private Dictionary<string, long> CountWords(IEnumerable<string> corpus)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in corpus)
        {
            if (string.IsNullOrEmpty(line)) continue;
            foreach (var word in PreTokenizer.Split(TextCleaner.Clean(line, Options.Cleaning)))
            {
                if (word is PreTokenizer.StartOfText or PreTokenizer.EndOfText) continue;
                counts[word] = counts.GetValueOrDefault(word) + 1;
            }
        }
        return counts;
    }

    /// <summary>Words as symbol sequences plus incrementally maintained pair counts.</summary>
    private sealed class TrainingState
    {
        private readonly List<int[]> words = [];
        private readonly List<long> frequencies = [];
        private readonly Dictionary<long, long> pairCounts = [];
        private readonly Dictionary<long, HashSet<int>> pairWords = [];
        private readonly Dictionary<string, int> symbolIds = new(StringComparer.Ordinal);
        private readonly SortedSet<(long Count, int Left, int Right)> ranking;

        public List<string> Symbols { get; } = [];

        public TrainingState(Dictionary<string, long> wordCounts)
        {
            ranking = new SortedSet<(long Count, int Left, int Right)>(Comparer<(long Count, int Left, int Right)>.Create(Compare));
            foreach (var symbol in ByteLevelAlphabet.BaseSymbols()) Intern(symbol);
            var byteSymbol = new int[256];
            for (var i = 0; i < 256; i++) byteSymbol[ByteLevelAlphabet.VocabularyOrder[i]] = i;

            // Sorted so that word indices, hence everything downstream, are reproducible.
            foreach (var (word, count) in wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var bytes = Encoding.UTF8.GetBytes(word);
                var symbols = new int[bytes.Length];
                for (var i = 0; i < bytes.Length; i++) symbols[i] = byteSymbol[bytes[i]] + (i == bytes.Length - 1 ? 256 : 0);
                words.Add(symbols);
                frequencies.Add(count);
            }
            var deltas = new Dictionary<long, long>();
            for (var w = 0; w < words.Count; w++) CountPairs(w, +1, deltas);
            Apply(deltas);
        }

        // Most frequent pair first; ties by left then right symbol string, ordinal.
        private int Compare((long Count, int Left, int Right) a, (long Count, int Left, int Right) b)
        {
            var byCount = b.Count.CompareTo(a.Count);
            if (byCount != 0) return byCount;
            var byLeft = string.CompareOrdinal(Symbols[a.Left], Symbols[b.Left]);
            return byLeft != 0 ? byLeft : string.CompareOrdinal(Symbols[a.Right], Symbols[b.Right]);
        }

        public bool TryTakeBest(int minFrequency, out int left, out int right)
        {
            left = right = -1;
            if (ranking.Count == 0) return false;
            var best = ranking.Min;
            if (best.Count < Math.Max(1, minFrequency)) return false;
            (left, right) = (best.Left, best.Right);
            return true;
        }

        /// <summary>Merges every occurrence of (left, right); returns the new symbol.</summary>
        public int Merge(int left, int right)
        {
            var merged = Intern(Symbols[left] + Symbols[right]);
            var key = Key(left, right);
            var deltas = new Dictionary<long, long>();
            foreach (var w in pairWords[key].Order())
            {
                var word = words[w];
                CountPairs(w, -1, deltas);
                var output = new List<int>(word.Length);
                for (var i = 0; i < word.Length; i++)
                {
                    if (i < word.Length - 1 && word[i] == left && word[i + 1] == right)
                    {
                        output.Add(merged);
                        i++;
                    }
                    else
                    {
                        output.Add(word[i]);
                    }
                }
                words[w] = [.. output];
                CountPairs(w, +1, deltas);
            }
            Apply(deltas);
            return merged;
        }

        private void CountPairs(int w, int sign, Dictionary<long, long> deltas)
        {
            var word = words[w];
            for (var i = 0; i < word.Length - 1; i++)
            {
                var key = Key(word[i], word[i + 1]);
                deltas[key] = deltas.GetValueOrDefault(key) + sign * frequencies[w];
                if (sign > 0)
                {
                    if (!pairWords.TryGetValue(key, out var set)) pairWords[key] = set = [];
                    set.Add(w);
                }
            }
        }

        private void Apply(Dictionary<long, long> deltas)
        {
            foreach (var (key, delta) in deltas)
            {
                if (delta == 0) continue;
                var (left, right) = ((int)(key >> 32), (int)(key & 0xFFFFFFFF));
                var old = pairCounts.GetValueOrDefault(key);
                if (old > 0) ranking.Remove((old, left, right));
                var now = old + delta;
                if (now > 0)
                {
                    pairCounts[key] = now;
                    ranking.Add((now, left, right));
                }
                else
                {
                    pairCounts.Remove(key);
                    pairWords.Remove(key); // no word has it any more
                }
            }
        }

        private int Intern(string symbol)
        {
            if (symbolIds.TryGetValue(symbol, out var id)) return id;
            id = Symbols.Count;
            Symbols.Add(symbol);
            symbolIds[symbol] = id;
            return id;
        }

        private static long Key(int left, int right) => ((long)left << 32) | (uint)right;
    }
}

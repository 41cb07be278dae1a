using System.Globalization;
using System.Text;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// Unicode Normalization Form C (UAX #15), managed. The project runs with InvariantGlobalization,
/// where <see cref="string.Normalize()"/> does nothing (it needs ICU); transformers' CLIP tokenizer
/// NFC-normalises every prompt, so decomposed input ("e" + U+0301) must compose to "é" here too.
/// Tables come from Python's unicodedata (NfcData.g.cs), the database transformers itself uses.
/// </summary>
internal static partial class Nfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> Data = new(Tables.Build);

    /// <summary>The NFC form of <paramref name="text"/>; returns the same instance when nothing changes.</summary>
    public static string Normalize(string text)
    {
        // Fast path: below U+0300 every character is already NFC and has combining class 0.
        var firstHigh = text.AsSpan().IndexOfAnyInRange((char)0x300, char.MaxValue);
        if (firstHigh < 0) return text;

        var tables = Data.Value;
        var buffer = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, tables, buffer);
        Reorder(buffer, tables);
        Compose(buffer, tables);

        var builder = new StringBuilder(text.Length);
        foreach (var cp in buffer) builder.Append(char.ConvertFromUtf32(cp));
        var result = builder.ToString();
        return result == text ? text : result;
    }

    private static void Decompose(int cp, Tables tables, List<int> output)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            var s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (tables.FullDecomposition.TryGetValue(cp, out var parts)) output.AddRange(parts);
        else output.Add(cp);
    }

    // Canonical ordering: a stable sort of every run of non-starters by combining class.
    private static void Reorder(List<int> cps, Tables tables)
    {
        for (var i = 1; i < cps.Count; i++)
        {
            var cc = tables.Ccc(cps[i]);
            if (cc == 0) continue;
            for (var j = i; j > 0; j--)
            {
                var previous = tables.Ccc(cps[j - 1]);
                if (previous <= cc) break;
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
            }
        }
    }

    private static void Compose(List<int> cps, Tables tables)
    {
        var output = 0;
        var starter = -1;
        var lastClass = -1; // -1: nothing kept since the starter (adjacent)
        for (var i = 0; i < cps.Count; i++)
        {
            var cp = cps[i];
            var cc = tables.Ccc(cp);
            var unblocked = starter >= 0 && (lastClass == -1 || (lastClass != 0 && lastClass < cc));
            if (unblocked && TryCompose(cps[starter], cp, tables, out var composite))
            {
                cps[starter] = composite;
                continue;
            }
            if (cc == 0)
            {
                starter = output;
                lastClass = -1;
            }
            else
            {
                lastClass = cc;
            }
            cps[output++] = cp;
        }
        cps.RemoveRange(output, cps.Count - output);
    }

    private static bool TryCompose(int first, int second, Tables tables, out int composite)
    {
        if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
        {
            composite = SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
            return true;
        }
        if (first >= SBase && first < SBase + SCount && (first - SBase) % TCount == 0 && second > TBase && second < TBase + TCount)
        {
            composite = first + (second - TBase);
            return true;
        }
        return tables.Compositions.TryGetValue(((long)first << 21) | (uint)second, out composite);
    }

    private sealed class Tables
    {
        public required Dictionary<int, byte> CombiningClass { get; init; }
        public required Dictionary<int, int[]> FullDecomposition { get; init; }
        public required Dictionary<long, int> Compositions { get; init; }

        public int Ccc(int cp) => cp < 0x300 ? 0 : CombiningClass.GetValueOrDefault(cp);

        public static Tables Build()
        {
            var ccc = new Dictionary<int, byte>();
            foreach (var entry in CombiningClassData.Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                var colon = entry.IndexOf(':');
                var dash = entry.IndexOf('-');
                var start = Hex(entry[..dash]);
                var end = Hex(entry[(dash + 1)..colon]);
                var value = byte.Parse(entry[(colon + 1)..], CultureInfo.InvariantCulture);
                for (var cp = start; cp <= end; cp++) ccc[cp] = value;
            }

            var single = new Dictionary<int, int[]>();
            var compositions = new Dictionary<long, int>();
            foreach (var entry in DecompositionData.Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                var separator = entry.IndexOfAny(['=', '!']);
                var cp = Hex(entry[..separator]);
                var parts = entry[(separator + 1)..].Split(' ').Select(Hex).ToArray();
                single[cp] = parts;
                if (entry[separator] == '=' && parts.Length == 2) compositions[((long)parts[0] << 21) | (uint)parts[1]] = cp;
            }

            var full = new Dictionary<int, int[]>(single.Count);
            foreach (var cp in single.Keys) full[cp] = Expand(cp, single).ToArray();
            return new Tables { CombiningClass = ccc, FullDecomposition = full, Compositions = compositions };
        }

        private static IEnumerable<int> Expand(int cp, Dictionary<int, int[]> single) =>
            single.TryGetValue(cp, out var parts) ? parts.SelectMany(p => Expand(p, single)) : [cp];

        private static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }
}

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// GPT-2/CLIP byte-level alphabet: every UTF-8 byte is shown as one printable character so that BPE
/// never sees whitespace or control characters. Printable Latin-1 bytes ('!'..'~', '¡'..'¬',
/// '®'..'ÿ') stand for themselves; the other 68 bytes map to U+0100 + n in increasing byte order.
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>Suffix that marks the last symbol of a pre-token (CLIP's end-of-word convention).</summary>
    public const string EndOfWord = "</w>";

    /// <summary>The character that stands for each byte.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Inverse of <see cref="ByteToChar"/>: -1 for characters outside the alphabet.</summary>
    private static readonly short[] CharToByteTable = BuildCharToByte();

    /// <summary>
    /// Bytes in vocabulary order: the printable ones first, then the remapped ones. CLIP's ids 0..255
    /// are these symbols, ids 256..511 the same with '&lt;/w&gt;'.
    /// </summary>
    public static readonly byte[] VocabularyOrder = BuildVocabularyOrder();

    public static bool TryGetByte(char c, out byte value)
    {
        var b = c < CharToByteTable.Length ? CharToByteTable[c] : (short)-1;
        value = (byte)Math.Max(b, (short)0);
        return b >= 0;
    }

    /// <summary>The 512 base symbols in CLIP vocabulary order.</summary>
    public static IEnumerable<string> BaseSymbols()
    {
        foreach (var b in VocabularyOrder) yield return ByteToChar[b].ToString();
        foreach (var b in VocabularyOrder) yield return ByteToChar[b] + EndOfWord;
    }

    /// <summary>Maps UTF-8 bytes to their alphabet characters.</summary>
    public static string Encode(ReadOnlySpan<byte> utf8) =>
        string.Create(utf8.Length, utf8.ToArray(), static (chars, bytes) =>
        {
            for (var i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        });

    private static bool IsPrintable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static byte[] BuildVocabularyOrder()
    {
        var order = new List<byte>(256);
        for (var b = 0; b < 256; b++) if (IsPrintable(b)) order.Add((byte)b);
        for (var b = 0; b < 256; b++) if (!IsPrintable(b)) order.Add((byte)b);
        return [.. order];
    }

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        var n = 0;
        for (var b = 0; b < 256; b++) table[b] = IsPrintable(b) ? (char)b : (char)(256 + n++);
        return table;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[256 + 68];
        Array.Fill(table, (short)-1);
        for (var b = 0; b < 256; b++) table[ByteToChar[b]] = (short)b;
        return table;
    }
}

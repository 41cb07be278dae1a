using System.Buffers;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace LatentDiffusion.TextEncoder;

/// <summary>Readers for the tokenizer file formats; every parse error names the file and line.</summary>
internal static class TokenizerFiles
{
    /// <summary>
    /// transformers reads at most this many merges (<c>[1 : 49152 - 256 - 2 + 1]</c>): CLIP's
    /// 49152-token budget minus the 256 byte symbols and the 2 specials. Lines after it are ignored.
    /// </summary>
    public const int MaxMerges = 49152 - 256 - 2;

    public static JsonDocument ParseJson(string path)
    {
        var bytes = ReadUtf8Bytes(path);
        try
        {
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { AllowTrailingCommas = false });
        }
        catch (JsonException e)
        {
            throw new TokenizerFileException(path, e.LineNumber + 1, "invalid JSON: " + e.Message, e);
        }
    }

    /// <summary>vocab.json: one JSON object token → non-negative integer id (a repeated key keeps its last id).</summary>
    public static Dictionary<string, int> ReadVocabulary(string path)
    {
        var bytes = ReadUtf8Bytes(path);
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw Error(path, bytes, reader.TokenStartIndex, "expected a JSON object mapping token to id");
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var token = reader.GetString()!; // property name
                if (!reader.Read() || reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var id) || id < 0)
                    throw Error(path, bytes, reader.TokenStartIndex, $"the id of token \"{token}\" is not a non-negative integer");
                vocabulary[token] = id;
            }
            if (reader.Read()) throw Error(path, bytes, reader.TokenStartIndex, "unexpected content after the vocabulary object");
        }
        catch (JsonException e)
        {
            throw new TokenizerFileException(path, e.LineNumber + 1, "invalid JSON: " + e.Message, e);
        }
        if (vocabulary.Count == 0) throw new TokenizerFileException(path, 1, "the vocabulary is empty");
        return vocabulary;
    }

    /// <summary>
    /// merges.txt: a <c>#version</c> header line, then one <c>left right</c> pair per line, rank = line index − 1.
    /// Blank lines are skipped (they take a rank in transformers, which changes nothing since
    /// only the order of ranks matters).
    /// </summary>
    public static List<(string Left, string Right)> ReadMerges(string path) => ParseMerges(path, ReadAllText(path), requireVersionHeader: true);

    /// <summary>
    /// OpenAI's bpe_simple_vocab_16e6.txt.gz: a header line, then merges of which the first
    /// <see cref="MaxMerges"/> are used. The vocabulary is the 256 byte symbols, the same with
    /// '&lt;/w&gt;', the merged strings in rank order, then <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c>.
    /// </summary>
    public static (Dictionary<string, int> Vocabulary, List<(string Left, string Right)> Merges) ReadOpenAiBpe(string path)
    {
        string text;
        try
        {
            using var file = File.OpenRead(path);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            // Bounded after decompression too: a small gzip can expand without limit.
            var bytes = Torch.BoundedFile.ReadAll(gzip, path, Torch.BoundedFile.TokenizerLimit, "decompressed BPE vocabulary");
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (Exception e) when (e is InvalidDataException or DecoderFallbackException)
        {
            throw new TokenizerFileException(path, null, "not a gzip file of UTF-8 text: " + e.Message, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerFileException(path, null, "cannot read: " + e.Message, e);
        }
        // The header reads "bpe_simple_vocab_16e6.txt#version: 0.2" (a known quirk); it is skipped whatever it says.
        var merges = ParseMerges(path, text, requireVersionHeader: false);
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var symbol in ByteLevelAlphabet.BaseSymbols()) vocabulary[symbol] = vocabulary.Count;
        var next = vocabulary.Count;
        foreach (var (left, right) in merges) vocabulary[left + right] = next++; // a repeated string keeps its last id, as dict(zip(...)) does
        vocabulary[PreTokenizer.StartOfText] = next++;
        vocabulary[PreTokenizer.EndOfText] = next;
        return (vocabulary, merges);
    }

    private static List<(string Left, string Right)> ParseMerges(string path, string text, bool requireVersionHeader)
    {
        // transformers: read().strip().split("\n")[1 : MaxMerges + 1]; lines are walked lazily because
        // OpenAI's file holds 262144 merge lines of which only the first 48894 are used.
        var content = text.AsSpan().Trim();
        var leadingLines = text.AsSpan(0, text.Length - text.AsSpan().TrimStart().Length).Count('\n');
        var merges = new List<(string, string)>(Math.Min(content.Length / 8 + 1, MaxMerges));
        var lineIndex = 0;
        while (lineIndex <= MaxMerges)
        {
            var newline = content.IndexOf('\n');
            var line = newline < 0 ? content : content[..newline];
            if (lineIndex == 0)
            {
                if (requireVersionHeader && !line.Contains("#version", StringComparison.Ordinal))
                    throw new TokenizerFileException(path, leadingLines + 1,
                        "expected the '#version: 0.2' header line (transformers skips the first line, so a file without it would silently lose its first merge)");
            }
            else if (!line.IsWhiteSpace())
            {
                merges.Add(ParseMerge(path, line, leadingLines + lineIndex + 1));
            }
            if (newline < 0) break;
            content = content[(newline + 1)..];
            lineIndex++;
        }
        if (merges.Count == 0 && lineIndex > 0) throw new TokenizerFileException(path, leadingLines + 2, "no merges found");
        return merges;
    }

    // Python's merge.split(): whitespace-separated parts; exactly two make a merge.
    private static (string, string) ParseMerge(string path, ReadOnlySpan<char> line, long lineNumber)
    {
        var trimmed = line.Trim();
        var space = IndexOfWhiteSpace(trimmed);
        if (space > 0)
        {
            var right = trimmed[space..].TrimStart();
            if (IndexOfWhiteSpace(right) < 0) return (trimmed[..space].ToString(), right.ToString());
        }
        throw new TokenizerFileException(path, lineNumber, $"expected a merge 'left right', found \"{Shorten(line.TrimEnd('\r').ToString())}\"");
    }

    private static int IndexOfWhiteSpace(ReadOnlySpan<char> s)
    {
        for (var i = 0; i < s.Length; i++) if (char.IsWhiteSpace(s[i])) return i;
        return -1;
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..57] + "...";

    private static TokenizerFileException Error(string path, byte[] bytes, long offset, string reason)
    {
        long line = 1;
        for (var i = 0; i < offset && i < bytes.Length; i++) if (bytes[i] == '\n') line++;
        return new TokenizerFileException(path, line, reason);
    }

    private static byte[] ReadAllBytes(string path)
    {
        try
        {
            var bytes = Torch.BoundedFile.ReadAllBytes(path, Torch.BoundedFile.TokenizerLimit, "tokenizer file");
            // A UTF-8 byte order mark is tolerated (Python's json.load would reject it; editors add it).
            return bytes.AsSpan().StartsWith("\uFEFF"u8) ? bytes[3..] : bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerFileException(path, null, "cannot read: " + e.Message, e);
        }
    }

    /// <summary>
    /// The bytes of a JSON file, checked to be UTF-8 first: System.Text.Json reads invalid bytes inside a string
    /// without complaint and fails only when the string is fetched, with an InvalidOperationException that names no file.
    /// </summary>
    private static byte[] ReadUtf8Bytes(string path)
    {
        var bytes = ReadAllBytes(path);
        var status = Utf8.ToUtf16(bytes, new char[bytes.Length], out var valid, out _, replaceInvalidSequences: false);
        if (status != OperationStatus.Done) throw Error(path, bytes, valid, $"not valid UTF-8 (byte {valid})");
        return bytes;
    }

    private static string ReadAllText(string path)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(ReadAllBytes(path));
        }
        catch (DecoderFallbackException e)
        {
            throw new TokenizerFileException(path, null, "not valid UTF-8: " + e.Message, e);
        }
    }
}

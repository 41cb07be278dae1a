using System.Text;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// A PNG text entry. Written as tEXt when keyword and text are Latin-1 (what PIL and AUTOMATIC1111
/// do), as iTXt (UTF-8) otherwise; read back from tEXt, zTXt and iTXt alike.
/// </summary>
public sealed record PngText(string Keyword, string Text)
{
    /// <summary>The keyword AUTOMATIC1111 stores its generation parameters under.</summary>
    public const string ParametersKeyword = "parameters";

    /// <summary>True when the text fits a tEXt chunk (every character is Latin-1).</summary>
    public bool IsLatin1 => Text.All(c => c <= '\u00FF');

    /// <summary>Throws when the keyword breaks the PNG rules (1–79 printable Latin-1 characters, single inner spaces) or the text holds NUL.</summary>
    public void Validate()
    {
        if (Keyword.Length is 0 or > 79)
            throw new ArgumentException($"PNG text keyword '{Keyword}' must be 1 to 79 characters long");
        if (Keyword.Any(c => c is < ' ' or > '~' and < '\u00A1' or > '\u00FF'))
            throw new ArgumentException($"PNG text keyword '{Keyword}' may contain only printable Latin-1 characters");
        if (Keyword[0] == ' ' || Keyword[^1] == ' ' || Keyword.Contains("  ", StringComparison.Ordinal))
            throw new ArgumentException($"PNG text keyword '{Keyword}' may not start or end with a space or contain two spaces in a row");
        if (Text.Contains('\0'))
            throw new ArgumentException($"PNG text '{Keyword}' contains a NUL character");
    }

    internal string ChunkType => IsLatin1 ? "tEXt" : "iTXt";

    /// <summary>The chunk payload: tEXt = keyword NUL latin1; iTXt = keyword NUL 0 0 "" NUL "" NUL utf8.</summary>
    internal byte[] ToChunkData()
    {
        Validate();
        var keyword = Encoding.Latin1.GetBytes(Keyword);
        if (IsLatin1) return [.. keyword, 0, .. Encoding.Latin1.GetBytes(Text)];
        return [.. keyword, 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes(Text)];
    }
}

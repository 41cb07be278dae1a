namespace LatentDiffusion.TextEncoder;

/// <summary>A tokenizer file (vocab.json, merges.txt, a config, OpenAI's .gz) that does not parse.</summary>
public sealed class TokenizerFileException : Exception
{
    public TokenizerFileException(string filePath, long? line, string reason, Exception? inner = null)
        : base(line is { } l ? $"{filePath}, line {l}: {reason}" : $"{filePath}: {reason}", inner)
    {
        FilePath = filePath;
        Line = line;
        Reason = reason;
    }

    /// <summary>The file that failed to parse.</summary>
    public string FilePath { get; }

    /// <summary>1-based line of the problem, where one can be named.</summary>
    public long? Line { get; }

    public string Reason { get; }
}

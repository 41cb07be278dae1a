using System.Text;

namespace LatentDiffusion.Torch;

/// <summary>
/// A file (or its decompressed content) is larger than its kind allows; the message names the file, its kind and the limit.
/// Not an IOException, so that readers which wrap I/O errors with "cannot be read" pass it on unchanged.
/// </summary>
public sealed class FileTooLargeException(string path, string kind, long limit)
    : Exception($"{path}: {kind} is larger than the {BoundedFile.Describe(limit)} limit (is it a link to a device such as /dev/zero?)")
{
    public string FilePath { get; } = path;
}

/// <summary>
/// Reads small files (configs, vocabularies) with a size limit suited to their kind. The limit is counted
/// on the bytes actually read, not taken from the file's length: a link to /dev/zero or a FIFO reports
/// a length of 0 and would otherwise be read until memory runs out.
/// </summary>
public static class BoundedFile
{
    /// <summary>config.json, scheduler_config.json, model_index.json, recipes: real ones are a few kilobytes.</summary>
    public const long ConfigLimit = 16L << 20;

    /// <summary>vocab.json, merges.txt, tokenizer.json and OpenAI's decompressed BPE file: real ones are a few megabytes.</summary>
    public const long TokenizerLimit = 64L << 20;

    /// <summary>Images: a 64-megapixel BMP (the decoder's pixel limit) is 256 MiB; compressed formats are smaller.</summary>
    public const long ImageLimit = 512L << 20;

    public static byte[] ReadAllBytes(string path, long limit, string kind)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        // A regular file that says it is too long is refused before reading; a device (length 0) is counted as it is read.
        if (file.CanSeek && file.Length > limit) throw new FileTooLargeException(path, kind, limit);
        return ReadAll(file, path, limit, kind);
    }

    /// <summary>The file as text, decoded as <see cref="File.ReadAllText(string)"/> does (UTF-8 unless a byte order mark says otherwise).</summary>
    public static string ReadAllText(string path, long limit, string kind)
    {
        using var reader = new StreamReader(new MemoryStream(ReadAllBytes(path, limit, kind)), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// Reads <paramref name="stream"/> to its end, failing once more than <paramref name="limit"/> bytes came out of it
    /// (use it on a decompressing stream to bound the decompressed size).
    /// </summary>
    public static byte[] ReadAll(Stream stream, string path, long limit, string kind)
    {
        using var result = new MemoryStream();
        var buffer = new byte[81920];
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            if (result.Length + n > limit) throw new FileTooLargeException(path, kind, limit);
            result.Write(buffer, 0, n);
        }
        return result.ToArray();
    }

    internal static string Describe(long bytes) =>
        bytes % (1L << 20) == 0 ? $"{bytes >> 20} MiB" : bytes % 1024 == 0 ? $"{bytes >> 10} KiB" : $"{bytes}-byte";
}

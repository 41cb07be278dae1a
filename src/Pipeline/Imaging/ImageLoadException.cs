namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// An image could not be read: the file is missing or unreadable, is not an image, is corrupt or
/// truncated, or is larger than allowed. The message is one line that names the file.
/// </summary>
public sealed class ImageLoadException : Exception
{
    /// <summary>The file name (or the label given for in-memory data).</summary>
    public string FileName { get; }

    /// <summary>What went wrong, without the file name.</summary>
    public string Problem { get; }

    public ImageLoadException(string fileName, string problem, Exception? inner = null)
        : base($"{fileName}: {problem}", inner)
    {
        FileName = fileName;
        Problem = problem;
    }
}

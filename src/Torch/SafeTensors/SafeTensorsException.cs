namespace LatentDiffusion.Torch.SafeTensors;

/// <summary>A safetensors file is malformed or does not hold what was asked; the message names the file.</summary>
public sealed class SafeTensorsException : Exception
{
    public string FilePath { get; }

    public SafeTensorsException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
    }
}

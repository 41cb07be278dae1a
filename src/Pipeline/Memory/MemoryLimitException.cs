namespace LatentDiffusion.Pipeline.Memory;

/// <summary>
/// A request refused before it allocated: its estimated memory need exceeds what the device has available.
/// The message is one line naming the size, the estimate, what is available and what to change. An
/// <see cref="OutOfMemoryException"/> (InsufficientMemoryException is sealed), so a handler of running out of memory sees it too.
/// </summary>
public sealed class MemoryLimitException : OutOfMemoryException
{
    public MemoryLimitException(string message, double neededBytes, double availableBytes) : base(message)
    {
        NeededBytes = neededBytes;
        AvailableBytes = availableBytes;
    }

    /// <summary>The estimate, in bytes (a double: a refused request's need may not fit in a long).</summary>
    public double NeededBytes { get; }

    public double AvailableBytes { get; }

    /// <summary>"21.3 GB", "512 MB": decimal units with three significant figures at most.</summary>
    public static string Format(double bytes) =>
        bytes >= 1e15 ? $"{bytes / 1e15:0.#} PB"
        : bytes >= 1e12 ? $"{bytes / 1e12:0.#} TB"
        : bytes >= 1e9 ? $"{bytes / 1e9:0.#} GB"
        : $"{bytes / 1e6:0} MB";
}

namespace LatentDiffusion.Torch;

/// <summary>A libtorch operation failed; <see cref="Operation"/> names it.</summary>
public sealed class TorchException : Exception
{
    public string Operation { get; }

    public TorchException(string operation, string message) : base($"{operation}: {message}")
    {
        Operation = operation;
    }

    /// <summary>Builds the exception from the native thread-local error (format "op: message").</summary>
    internal static TorchException FromNative(string fallbackOperation)
    {
        var raw = Native.LibTorch.FirstLine(Native.NativeMethods.LastError() ?? "");
        var colon = raw.IndexOf(": ", StringComparison.Ordinal);
        return colon > 0
            ? new TorchException(raw[..colon], raw[(colon + 2)..])
            : new TorchException(fallbackOperation, raw.Length > 0 ? raw : "failed");
    }
}

namespace LatentDiffusion.Torch;

/// <summary>A libtorch operation failed; <see cref="Operation"/> names it.</summary>
public sealed class TorchException : Exception
{
    public string Operation { get; }

    public TorchException(string operation, string message) : base($"{operation}: {message}")
    {
        Operation = operation;
    }

    /// <summary>
    /// Builds the exception from the native thread-local error (format "op: message"). The managed
    /// caller's <paramref name="operation"/> names it: native entry points shared by a family of
    /// operations (ld_binary, ld_unary, ld_reduce) only know the family ("binary"), the caller knows
    /// it was "add" or "sum". The native name is used only where the caller gave none ("op").
    /// </summary>
    internal static TorchException FromNative(string operation)
    {
        var raw = Native.LibTorch.FirstLine(Native.NativeMethods.LastError() ?? "");
        var colon = raw.IndexOf(": ", StringComparison.Ordinal);
        var nativeOperation = colon > 0 ? raw[..colon] : null;
        var message = colon > 0 ? raw[(colon + 2)..] : raw;
        var name = operation != "op" || nativeOperation is null ? operation : nativeOperation;
        return new TorchException(name, message.Length > 0 ? message : "failed");
    }
}

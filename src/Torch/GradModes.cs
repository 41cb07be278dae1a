using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>Restores the previous grad mode when disposed.</summary>
public readonly struct GradModeScope : IDisposable
{
    private readonly bool previous;

    internal GradModeScope(bool enabled) => previous = NativeMethods.SetGradEnabled(enabled ? 1 : 0) == 1;

    public void Dispose() => NativeMethods.SetGradEnabled(previous ? 1 : 0);
}

/// <summary>Leaves libtorch's inference mode when disposed; must be disposed on the thread that made it.</summary>
public sealed class InferenceModeScope : IDisposable
{
    private IntPtr guard;

    internal InferenceModeScope()
    {
        guard = NativeMethods.InferenceModeEnter();
        if (guard == IntPtr.Zero) throw TorchException.FromNative("inference_mode");
    }

    public void Dispose()
    {
        if (guard == IntPtr.Zero) return;
        NativeMethods.InferenceModeExit(guard);
        guard = IntPtr.Zero;
    }
}

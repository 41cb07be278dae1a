using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>
/// A libtorch random generator. On the CPU it is libtorch's own Philox/MT19937 CPU generator, so
/// <c>Tensors.Randn(shape, generator: new Generator(seed))</c> gives exactly what
/// <c>torch.randn(shape, generator=torch.Generator().manual_seed(seed))</c> gives in PyTorch.
/// </summary>
public sealed class Generator : IDisposable
{
    internal IntPtr Handle { get; private set; }
    public Device Device { get; }

    public Generator(ulong seed, Device? device = null)
    {
        Device = device ?? Device.CPU;
        Handle = NativeMethods.GeneratorNew(seed, (int)Device.Type, Device.Index);
        if (Handle == IntPtr.Zero) throw TorchException.FromNative("generator");
    }

    public Generator ManualSeed(ulong seed)
    {
        Check(NativeMethods.GeneratorManualSeed(Live, seed), "manual_seed");
        return this;
    }

    /// <summary>The generator's full state (a uint8 tensor), for resumable training.</summary>
    public unsafe Tensor GetState()
    {
        IntPtr state;
        Check(NativeMethods.GeneratorGetState(Live, &state), "generator_get_state");
        return new Tensor(state);
    }

    public void SetState(Tensor state) =>
        Check(NativeMethods.GeneratorSetState(Live, state.Handle), "generator_set_state");

    internal IntPtr Live => Handle != IntPtr.Zero ? Handle : throw new ObjectDisposedException(nameof(Generator));

    private static void Check(int status, string op)
    {
        if (status != 0) throw TorchException.FromNative(op);
    }

    public void Dispose()
    {
        if (Handle == IntPtr.Zero) return;
        NativeMethods.GeneratorFree(Handle);
        Handle = IntPtr.Zero;
        GC.SuppressFinalize(this);
    }

    ~Generator()
    {
        if (Handle != IntPtr.Zero) NativeMethods.GeneratorFree(Handle);
    }
}

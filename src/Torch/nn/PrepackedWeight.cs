using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch.NN;

/// <summary>
/// A Conv2d (or Linear, see there) weight reordered once into oneDNN's blocked layout, for inference on the CPU: libtorch's
/// conv2d reorders the dense weight on every call, which costs more than the convolution itself where
/// the weights are large and the feature maps small (the U-Net's 1280-channel blocks at 4×4 and 8×8:
/// 3–7× per call). The copy is made at the first forward without autograd and kept while the weight's
/// version counter, handle and dtype stay the same; an in-place update (an optimiser step, an EMA copy,
/// LoadStateDict) or a conversion makes it stale. Weights that are inference tensors have no version
/// counter and are never packed. The convolution is the same oneDNN primitive; the packed layout is chosen
/// without the input's size, which can change the kernel and so the float rounding (tests: ≤ 1e-6 relative).
/// <para>
/// One copy, not two (issue 19): a weight that does not require grad (a model frozen for inference) is
/// released once packed. The Tensor object stays (optimisers, state dicts and the module keep it) but
/// refers to a one-element NaN tensor expanded to the weight's shape and dtype, so shape and dtype stay
/// right. Anything that uses its values from outside the forward pass, through any reference (the Tensor's
/// handle for an operation, the <see cref="Conv2d.Weight"/> getter, parameter listings, state dicts,
/// conversions, a LoRA merge's kept list), first gets it back: the packed copy reordered to the plain layout,
/// bit for bit the same values (a reorder is a permutation); the next forward without autograd releases it again.
/// A weight that requires grad is never released, so autograd and training see no difference.
/// </para>
/// </summary>
/// <param name="available">Whether packing is on (oneDNN present, not turned off by the layer's environment variable).</param>
/// <param name="packs">The weight dtypes the layer packs.</param>
/// <param name="prepack">Makes the packed copy of the weight (detached from any dispose scope).</param>
/// <param name="unpack">The plain weight of the given shape back from the packed copy, bit for bit.</param>
internal sealed class PrepackedWeight(bool available, Func<DType, bool> packs, Func<Tensor, Tensor> prepack,
    Func<Tensor, long[], Tensor> unpack)
{

    private readonly Lock gate = new();
    private Tensor? packed;
    private IntPtr handle;
    private long version;
    private DType dtype;
    private bool released;

    /// <summary>The packed copy for a forward without autograd where the layer's <paramref name="applies"/> (input dtype, shape); else null.</summary>
    public Tensor? Get(Tensor weight, Tensor? bias, bool applies)
    {
        if (!available || Autograd.IsGradEnabled || !applies) return null;
        return Pack(weight, bias);
    }

    /// <summary>
    /// Packs (and releases) a frozen weight now rather than at the first forward: a model about to run inference,
    /// loaded inside <see cref="NativeHeap.MapWeights"/> so that the released plain weight goes back to the system.
    /// </summary>
    public void PackNow(Tensor weight, Tensor? bias)
    {
        if (available && !weight.RequiresGrad) Pack(weight, bias);
    }

    private Tensor? Pack(Tensor weight, Tensor? bias)
    {
        // Metadata only until the weight's values are needed: reading them would give a released weight back.
        var weightType = weight.DType;
        if (!packs(weightType) || weight.Device.Type != DeviceType.Cpu || bias is { } b && b.DType != weightType)
            return null;
        lock (gate)
        {
            if (released) return packed;
            var currentVersion = NativeMethods.TensorVersion(weight.Handle);
            if (currentVersion < 0) return null;
            if (packed is null || handle != weight.Handle || version != currentVersion || dtype != weightType)
            {
                Drop(weight);
                packed = prepack(weight);
                handle = weight.Handle;
                version = currentVersion;
                dtype = weightType;
            }
            if (!weight.RequiresGrad) Release(weight);
            return packed;
        }
    }

    /// <summary>Bytes of the packed copy (0 when there is none).</summary>
    public long Bytes
    {
        get
        {
            lock (gate) return packed?.StorageBytes ?? 0;
        }
    }

    /// <summary>Gives the plain weight back if it was released; the packed copy stays valid for it.</summary>
    public void Restore(Tensor weight)
    {
        lock (gate)
        {
            weight.RestoreBeforeUse(null);
            if (!released || packed is null) return;
            weight.ReplaceWith(unpack(packed, weight.Shape));
            released = false;
            handle = weight.Handle;
            version = NativeMethods.TensorVersion(weight.Handle);
        }
    }

    /// <summary>The weight changed behind the packed copy (a conversion): drop the copy, giving the weight back first.</summary>
    public void Clear(Tensor weight)
    {
        Restore(weight);
        Drop(weight);
    }

    /// <summary>Frees the packed copy; only where the weight is not released (or is being disposed with it).</summary>
    public void Drop(Tensor weight)
    {
        lock (gate)
        {
            weight.RestoreBeforeUse(null);
            packed?.Dispose();
            packed = null;
            handle = IntPtr.Zero;
            released = false;
        }
    }

    private void Release(Tensor weight)
    {
        using (DisposeScope.Enter())
        {
            var ones = weight.Shape;
            Array.Fill(ones, 1L);
            using var nan = Tensors.Full(ones, double.NaN, weight.DType, weight.Device);
            weight.ReplaceWith(nan.Expand(weight.Shape));
        }
        released = true;
        weight.RestoreBeforeUse(Restore); // any later use of the values, through any reference, gets them back first
    }
}

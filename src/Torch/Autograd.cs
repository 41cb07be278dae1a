using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>torch.autograd functions that go beyond <see cref="Tensor.Backward"/>.</summary>
public static class Autograd
{
    /// <summary>Disables gradient recording until disposed (torch.no_grad()).</summary>
    public static GradModeScope NoGrad() => new(false);

    /// <summary>Enables gradient recording until disposed (torch.enable_grad()).</summary>
    public static GradModeScope EnableGrad() => new(true);

    /// <summary>libtorch's inference mode until disposed: no autograd bookkeeping at all.</summary>
    public static InferenceModeScope InferenceMode() => new();

    public static bool IsGradEnabled => NativeMethods.IsGradEnabled() == 1;

    /// <summary>
    /// torch.autograd.grad: the gradients of Σᵢ ⟨<paramref name="gradOutputs"/>ᵢ, <paramref name="outputs"/>ᵢ⟩
    /// with respect to each of <paramref name="inputs"/>, returned as new tensors and not accumulated
    /// into any <see cref="Tensor.Grad"/>. Only the part of the graph between the outputs and the
    /// inputs is traversed. <paramref name="gradOutputs"/> may be null when every output is a scalar.
    /// An input the outputs do not depend on is an error, or gives null with <paramref name="allowUnused"/>.
    /// <paramref name="retainGraph"/> keeps the graph for a later backward pass (default: <paramref name="createGraph"/>);
    /// <paramref name="createGraph"/> records the gradients' own graph (higher-order derivatives).
    /// </summary>
    public static unsafe Tensor?[] Grad(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor?>? gradOutputs = null,
        bool? retainGraph = null, bool createGraph = false, bool allowUnused = false)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(inputs);
        if (gradOutputs is not null && gradOutputs.Count != outputs.Count)
            throw new ArgumentException($"{gradOutputs.Count} output gradients for {outputs.Count} outputs", nameof(gradOutputs));
        var outputHandles = Tensor.Handles(outputs);
        var inputHandles = Tensor.Handles(inputs);
        var weightHandles = gradOutputs?.Select(g => g?.Handle ?? IntPtr.Zero).ToArray();
        var results = new IntPtr[inputHandles.Length];
        fixed (IntPtr* o = outputHandles)
        fixed (IntPtr* i = inputHandles)
        fixed (IntPtr* w = weightHandles)
        fixed (IntPtr* r = results)
        {
            Tensor.Check(NativeMethods.AutogradGrad(o, w, outputHandles.Length, i, inputHandles.Length,
                (retainGraph ?? createGraph) ? 1 : 0, createGraph ? 1 : 0, allowUnused ? 1 : 0, r), "autograd_grad");
        }
        return results.Select(h => h == IntPtr.Zero ? null : new Tensor(h)).ToArray();
    }

    /// <summary>The gradient of the scalar <paramref name="output"/> with respect to <paramref name="input"/> (torch.autograd.grad(output, input)[0]).</summary>
    public static Tensor Grad(Tensor output, Tensor input, bool retainGraph = false) =>
        Grad([output], [input], retainGraph: retainGraph)[0]!;
}

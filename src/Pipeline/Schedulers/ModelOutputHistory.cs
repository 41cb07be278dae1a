using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// diffusers' <c>model_outputs</c> of the multistep solvers (DPM-Solver multistep and singlestep, DEIS, UniPC): the converted
/// model outputs of the last <c>solver_order</c> steps, newest last (<c>history[^1]</c>), null where none was taken yet.
/// The tensors are owned here, outside any <see cref="DisposeScope"/>.
/// </summary>
internal sealed class ModelOutputHistory(int order) : IDisposable
{
    private readonly Tensor?[] outputs = new Tensor?[order];

    public Tensor? this[Index index] => outputs[index];

    /// <summary>Drops the oldest output and keeps a handle of <paramref name="output"/> as the newest (the caller's stays the caller's).</summary>
    public void Push(Tensor output)
    {
        outputs[0]?.Dispose();
        for (int k = 0; k < outputs.Length - 1; k++) outputs[k] = outputs[k + 1];
        outputs[^1] = output.Alias().DetachFromDisposeScope();
    }

    /// <summary>Forgets every output (a new schedule).</summary>
    public void Clear()
    {
        for (int i = 0; i < outputs.Length; i++)
        {
            outputs[i]?.Dispose();
            outputs[i] = null;
        }
    }

    public void Dispose() => Clear();
}

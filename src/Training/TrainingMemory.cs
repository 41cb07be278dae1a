using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training;

/// <summary>
/// The trainer's guard: a recipe whose batch cannot fit is refused before the first batch is built, with one line
/// naming the batch, the estimate and what is available, instead of growing until the machine kills the process.
/// </summary>
internal static class TrainingMemory
{
    /// <summary>Throws a <see cref="MemoryLimitException"/> when <see cref="MemoryEstimate.TrainingStep"/> exceeds the available memory.</summary>
    public static void EnsureFits(TrainingOptions options, Module model, IDataset dataset, Device device, double? availableBytes = null)
    {
        var need = MemoryEstimate.TrainingStep(model.ParameterCount, options.Ema is not null, options.BatchSize, dataset.ItemShape);
        var available = availableBytes ?? AvailableMemory.Bytes(device);
        if (need <= available) return;
        throw new MemoryLimitException(
            $"'training.batch_size' {options.BatchSize} of [{string.Join(", ", dataset.ItemShape)}] samples with {model.ParameterCount} parameters: " +
            $"needs about {MemoryLimitException.Format(need)}, {MemoryLimitException.Format(available)} available (lower 'training.batch_size')",
            need, available);
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training;

/// <summary>
/// What one kind of model adds to the shared <see cref="Trainer"/> (pixel DDPM, VAE, text encoder,
/// latent U-Net, the 2-D toy): its trainable module, its loss, its samples and its export format.
/// The trainer owns everything else: data loading, optimiser, schedule, clipping, EMA, metrics,
/// checkpoints, progress and cancellation.
/// </summary>
public interface ITrainingTask
{
    /// <summary>
    /// The module trained. The optimiser, gradient clipping and EMA cover its parameters, and a
    /// checkpoint stores its state dict; anything else the task keeps must be derivable from the recipe.
    /// </summary>
    Module Model { get; }

    /// <summary>
    /// The loss of <paramref name="batch"/>: a scalar tensor attached to the graph (the trainer calls
    /// Backward). Every random draw must come from <paramref name="random"/>, the trainer's generator,
    /// whose state is checkpointed, so that a resumed run repeats an uninterrupted one bit for bit.
    /// Called inside a <see cref="DisposeScope"/> that the trainer closes after the step.
    /// </summary>
    Tensor ComputeLoss(Batch batch, Generator random);

    /// <summary>
    /// Writes samples for step <paramref name="step"/> (e.g. samples/step-001000.png) and returns the
    /// file written, or null. The model holds the EMA weights when EMA is on and is in eval mode;
    /// <paramref name="random"/> is a generator seeded the same way every time, so successive grids
    /// show the same noise growing into images. A long sampling loop should stop with
    /// OperationCanceledException when <paramref name="cancellationToken"/> fires (the trainer then
    /// skips the grid, writes its checkpoint and stops).
    /// </summary>
    string? WriteSamples(string directory, long step, Generator random, CancellationToken cancellationToken);

    /// <summary>Exports the model (the EMA weights when EMA is on) in the task's own format into <paramref name="directory"/>.</summary>
    void SaveModel(string directory);
}

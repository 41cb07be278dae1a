using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training;

/// <summary>
/// A task that trains a second model against its own, as a GAN trains its discriminator (the VAE's
/// PatchGAN). The trainer gives the discriminator its own AdamW and checkpoints both. Before
/// <see cref="Adversary.StartStep"/> the task trains as a plain <see cref="ITrainingTask"/> and the
/// discriminator is not touched; from it on, each step is:
/// <list type="number">
/// <item><see cref="ComputeAdversarialLoss"/> with the discriminator's parameters frozen (gradients reach
/// the model through it, not its weights), then backward, clipping, the model's optimiser, schedule and EMA;</item>
/// <item><see cref="ComputeDiscriminatorLoss"/> on what step 1 produced (detached), then backward and the
/// discriminator's optimiser.</item>
/// </list>
/// Both happen inside one <see cref="DisposeScope"/>, so the task may keep step 1's tensors for step 2.
/// </summary>
public interface IAdversarialTrainingTask : ITrainingTask
{
    /// <summary>The discriminator and how to optimise it; null when this task trains without one.</summary>
    Adversary? Adversary { get; }

    /// <summary>
    /// The model's loss including the adversarial term, used instead of <see cref="ITrainingTask.ComputeLoss"/>
    /// from <see cref="Adversary.StartStep"/> on; the same rules for <paramref name="random"/> apply.
    /// </summary>
    Tensor ComputeAdversarialLoss(Batch batch, Generator random);

    /// <summary>The discriminator's loss on the outputs of the preceding <see cref="ComputeAdversarialLoss"/> (a scalar attached to the discriminator's graph).</summary>
    Tensor ComputeDiscriminatorLoss(Generator random);

    /// <summary>
    /// Named scalars of the last adversarial step (discriminator loss, logits, adaptive weight, …), most
    /// telling first: metrics.jsonl averages them over each logging window, the progress line shows them.
    /// </summary>
    IReadOnlyList<KeyValuePair<string, double>> StepMetrics { get; }
}

/// <summary>The second model of an <see cref="IAdversarialTrainingTask"/> and its optimiser settings.</summary>
/// <param name="Discriminator">Trained by its own AdamW; checkpointed as discriminator.* and discriminator_optimizer.*.</param>
/// <param name="StartStep">Steps done before the first adversarial one (taming's disc_start: adversarial while global_step ≥ it).</param>
/// <param name="LearningRate">Peak learning rate; the trainer's learning-rate schedule scales it as it scales the model's.</param>
public sealed record Adversary(Module Discriminator, long StartStep, double LearningRate, double Beta1, double Beta2, double Epsilon, double WeightDecay);

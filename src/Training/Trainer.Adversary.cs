using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training;

// The discriminator of an IAdversarialTrainingTask: its optimiser, its part of a step, its checkpoint entries.
public sealed partial class Trainer
{
    private const string DiscriminatorPrefix = "discriminator.";
    private const string DiscriminatorOptimizerPrefix = "discriminator_optimizer.";

    private sealed class AdversarialState : IDisposable
    {
        private readonly IAdversarialTrainingTask task;
        private readonly Adversary adversary;
        private readonly LearningRateSchedule schedule;
        private readonly List<Tensor> parameters;
        private readonly AdamW optimizer;

        private AdversarialState(IAdversarialTrainingTask task, Adversary adversary, Device device, LearningRateSchedule schedule)
        {
            this.task = task;
            this.adversary = adversary;
            this.schedule = schedule;
            adversary.Discriminator.To(device).Train();
            parameters = adversary.Discriminator.Parameters().Where(p => p.RequiresGrad).ToList();
            optimizer = new AdamW(parameters, adversary.LearningRate, (adversary.Beta1, adversary.Beta2), adversary.Epsilon, adversary.WeightDecay);
        }

        /// <summary>The discriminator's side of <paramref name="task"/>, or null when it trains without one.</summary>
        public static AdversarialState? Of(ITrainingTask task, Device device, LearningRateSchedule schedule) =>
            task is IAdversarialTrainingTask { Adversary: { } adversary } adversarial ? new(adversarial, adversary, device, schedule) : null;

        /// <summary>Whether the step after <paramref name="stepsDone"/> steps is adversarial.</summary>
        public bool ActiveAt(long stepsDone) => stepsDone >= adversary.StartStep;

        public IReadOnlyList<KeyValuePair<string, double>> StepMetrics => task.StepMetrics;

        /// <summary>
        /// The model's loss with its adversarial term. The discriminator's weights are left out of the graph
        /// (Lightning's toggle_optimizer), so the model's backward pass computes no gradient for them.
        /// </summary>
        public Tensor ModelLoss(Batch batch, Generator random)
        {
            foreach (var p in parameters) p.RequiresGrad = false;
            try
            {
                return task.ComputeAdversarialLoss(batch, random);
            }
            finally
            {
                foreach (var p in parameters) p.RequiresGrad = true;
            }
        }

        /// <summary>One step of the discriminator, with the model's learning-rate schedule at <paramref name="stepsDone"/>.</summary>
        public void TrainDiscriminator(long stepsDone, Generator random)
        {
            optimizer.ZeroGrad();
            var loss = task.ComputeDiscriminatorLoss(random);
            loss.Backward();
            optimizer.LearningRate = adversary.LearningRate * schedule.Multiplier(stepsDone);
            optimizer.Step();
            optimizer.ZeroGrad();
        }

        public IEnumerable<KeyValuePair<string, Tensor>> StateDict() =>
            adversary.Discriminator.StateDict().Select(kv => new KeyValuePair<string, Tensor>(DiscriminatorPrefix + kv.Key, kv.Value))
                .Concat(optimizer.StateDict().Select(kv => new KeyValuePair<string, Tensor>(DiscriminatorOptimizerPrefix + kv.Key, kv.Value)));

        public void LoadStateDict(Func<string, Dictionary<string, Tensor>> part)
        {
            adversary.Discriminator.LoadStateDict(part(DiscriminatorPrefix));
            optimizer.LoadStateDict(part(DiscriminatorOptimizerPrefix));
        }

        public void Dispose() => optimizer.Dispose();
    }
}

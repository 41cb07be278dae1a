namespace LatentDiffusion.Training;

/// <summary>Reported after every training step and when the run writes something.</summary>
/// <param name="Step">Steps done (the step just finished).</param>
/// <param name="MaxSteps">Steps the recipe asks for.</param>
/// <param name="Loss">Loss of the step just finished.</param>
/// <param name="LearningRate">Learning rate of the step just finished.</param>
/// <param name="StepsPerSecond">Recent training speed (it/s), excluding sampling and checkpoints.</param>
/// <param name="Elapsed">Wall time of this invocation.</param>
/// <param name="Remaining">Estimated time to <paramref name="MaxSteps"/>, once the speed is known.</param>
/// <param name="Event">What happened besides the step ("checkpoint step-000500", "samples …"), or null.</param>
/// <param name="Metrics">The task's own scalars of the step just finished (an adversarial step's d_loss, …), or null.</param>
public sealed record TrainingProgress(long Step, long MaxSteps, double Loss, double LearningRate, double StepsPerSecond,
    TimeSpan Elapsed, TimeSpan? Remaining, string? Event = null, IReadOnlyList<KeyValuePair<string, double>>? Metrics = null);

/// <summary>How a <see cref="Trainer.Run"/> ended.</summary>
/// <param name="Step">Steps done in total (including those before a resume).</param>
/// <param name="ResumedFrom">The checkpoint step the run resumed from, or null for a fresh run.</param>
/// <param name="Cancelled">The token stopped the run early (a checkpoint of <paramref name="Step"/> was written).</param>
/// <param name="LastLoss">Mean loss of the last logged window.</param>
/// <param name="StepsPerSecond">Mean training speed of this invocation.</param>
/// <param name="ModelDirectory">Where the exported model is (written only when the run completed), or null.</param>
public sealed record TrainingResult(long Step, long? ResumedFrom, bool Cancelled, double LastLoss, double StepsPerSecond, string? ModelDirectory);

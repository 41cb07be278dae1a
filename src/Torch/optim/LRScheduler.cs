namespace LatentDiffusion.Torch.Optim;

/// <summary>
/// A learning-rate multiplier as a function of the optimiser step, with the formulas of diffusers'
/// optimization.py (get_constant_schedule, get_constant_schedule_with_warmup,
/// get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup).
/// </summary>
public sealed class LearningRateSchedule
{
    private readonly Func<long, double> multiplier;

    public string Name { get; }

    private LearningRateSchedule(string name, Func<long, double> multiplier)
    {
        Name = name;
        this.multiplier = multiplier;
    }

    /// <summary>The factor applied to the base learning rate at optimiser step <paramref name="step"/> (0-based).</summary>
    public double Multiplier(long step) => multiplier(step);

    public static LearningRateSchedule Constant() => new("constant", _ => 1.0);

    /// <summary>Linear rise from 0 over <paramref name="warmupSteps"/>, then 1.</summary>
    public static LearningRateSchedule ConstantWithWarmup(long warmupSteps)
    {
        CheckSteps(warmupSteps, null);
        return new("constant_with_warmup", step => step < warmupSteps ? Warmup(step, warmupSteps) : 1.0);
    }

    /// <summary>Linear rise over <paramref name="warmupSteps"/>, then linear decay to 0 at <paramref name="trainingSteps"/>.</summary>
    public static LearningRateSchedule LinearWithWarmup(long warmupSteps, long trainingSteps)
    {
        CheckSteps(warmupSteps, trainingSteps);
        return new("linear", step => step < warmupSteps
            ? Warmup(step, warmupSteps)
            : Math.Max(0.0, (double)(trainingSteps - step) / Math.Max(1, trainingSteps - warmupSteps)));
    }

    /// <summary>
    /// Linear rise over <paramref name="warmupSteps"/>, then a cosine from 1 down to 0 at
    /// <paramref name="trainingSteps"/> (<paramref name="cycles"/> = 0.5 is half a period).
    /// </summary>
    public static LearningRateSchedule CosineWithWarmup(long warmupSteps, long trainingSteps, double cycles = 0.5)
    {
        CheckSteps(warmupSteps, trainingSteps);
        return new("cosine", step =>
        {
            if (step < warmupSteps) return Warmup(step, warmupSteps);
            var progress = (double)(step - warmupSteps) / Math.Max(1, trainingSteps - warmupSteps);
            return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * cycles * 2.0 * progress)));
        });
    }

    /// <summary>By diffusers' name (the <c>--lr_scheduler</c> values): constant, constant_with_warmup, linear, cosine.</summary>
    public static LearningRateSchedule FromName(string name, long warmupSteps = 0, long trainingSteps = 0) => name switch
    {
        "constant" => Constant(),
        "constant_with_warmup" => ConstantWithWarmup(warmupSteps),
        "linear" => LinearWithWarmup(warmupSteps, trainingSteps),
        "cosine" => CosineWithWarmup(warmupSteps, trainingSteps),
        _ => throw new ArgumentException($"unknown learning-rate schedule '{name}' (use constant, constant_with_warmup, linear or cosine)", nameof(name)),
    };

    private static double Warmup(long step, long warmupSteps) => (double)step / Math.Max(1, warmupSteps);

    private static void CheckSteps(long warmupSteps, long? trainingSteps)
    {
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "warm-up steps must not be negative");
        if (trainingSteps is { } t && t < 0) throw new ArgumentOutOfRangeException(nameof(trainingSteps), t, "training steps must not be negative");
    }
}

/// <summary>
/// Applies a <see cref="LearningRateSchedule"/> to an optimiser like torch's LambdaLR: on creation the
/// learning rate is set for <see cref="CurrentStep"/>, and each <see cref="Step"/> (called after
/// the optimiser's step) advances it by one. To resume, pass the number of steps already taken.
/// </summary>
public sealed class LRScheduler
{
    private readonly Optimizer optimizer;

    public LearningRateSchedule Schedule { get; }
    public double BaseLearningRate { get; }
    public long CurrentStep { get; private set; }

    public LRScheduler(Optimizer optimizer, LearningRateSchedule schedule, long currentStep = 0, double? baseLearningRate = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(schedule);
        if (currentStep < 0) throw new ArgumentOutOfRangeException(nameof(currentStep), currentStep, "the step must not be negative");
        this.optimizer = optimizer;
        Schedule = schedule;
        BaseLearningRate = baseLearningRate ?? optimizer.LearningRate;
        CurrentStep = currentStep;
        Apply();
    }

    /// <summary>The learning rate now set on the optimiser.</summary>
    public double LearningRate => optimizer.LearningRate;

    public void Step()
    {
        CurrentStep++;
        Apply();
    }

    private void Apply() => optimizer.LearningRate = BaseLearningRate * Schedule.Multiplier(CurrentStep);
}

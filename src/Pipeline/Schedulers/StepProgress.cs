namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// Progress in inference steps over a loop of scheduler calls, by diffusers' progress-bar rule: a second-order
/// scheduler (<see cref="IScheduler.Order"/> 2) takes two calls per step and one for its last (2n − 1 calls for n steps),
/// so a step completes every Order-th call and at the last one. For order 1 every call is a step.
/// </summary>
public static class StepProgress
{
    /// <summary>The inference steps <paramref name="calls"/> calls make up: ⌈calls / order⌉.</summary>
    public static int Steps(int calls, int order)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(calls);
        ArgumentOutOfRangeException.ThrowIfLessThan(order, 1);
        return (calls + order - 1) / order;
    }

    /// <summary>Whether call <paramref name="index"/> (0-based) of <paramref name="calls"/> completes a step (diffusers: (i + 1) % order == 0, or the last call).</summary>
    public static bool CompletesStep(int index, int calls, int order) => (index + 1) % order == 0 || index == calls - 1;
}

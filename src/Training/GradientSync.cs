using System.Diagnostics;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Training;

/// <summary>
/// What data-parallel training adds to a step, as torch's DistributedDataParallel: every rank starts from
/// rank 0's parameters and buffers, and after the backward pass the gradients are averaged over the ranks
/// in flat buckets of about 25 MB, so that clipping, the optimiser step and the EMA see the gradient of
/// the whole global batch and the ranks stay identical. A small vector goes first with them: which
/// parameters got a gradient on any rank (a parameter unused on one rank gets zeros there, so the buckets
/// line up), the loss (averaged, so the metrics are the global batch's), and whether any rank was asked to
/// stop (so all ranks stop after the same step).
/// </summary>
internal sealed class GradientSync(ProcessGroup group)
{
    private readonly Stopwatch communication = new();

    public ProcessGroup Group { get; } = group;

    /// <summary>Time spent in collectives since the run started.</summary>
    public TimeSpan CommunicationTime => communication.Elapsed;

    /// <summary>Overwrites <paramref name="model"/>'s parameters and buffers with rank 0's.</summary>
    public void BroadcastFromMain(Module model)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        communication.Start();
        try
        {
            Group.Broadcast([.. model.Parameters(), .. model.Buffers()], root: 0);
        }
        finally
        {
            communication.Stop();
        }
    }

    /// <summary>
    /// Averages the gradients of <paramref name="parameters"/> over the ranks; returns the loss averaged over the
    /// ranks and whether any rank asked to stop.
    /// </summary>
    public (double Loss, bool Stop) AverageGradients(IReadOnlyList<Tensor> parameters, double loss, bool stopRequested)
    {
        using var scope = DisposeScope.Enter();
        var grads = parameters.Select(p => p.Grad).ToArray();
        var n = grads.Length;
        var info = new double[n + 2];
        for (int i = 0; i < n; i++) info[i] = grads[i] is null ? 0 : 1;
        info[n] = loss;
        info[n + 1] = stopRequested ? 1 : 0;
        var shared = Tensor.From(info, info.Length);
        if (Group.Backend == Backend.Nccl && n > 0) shared = shared.To(parameters[0].Device); // NCCL reduces CUDA tensors only
        communication.Start();
        try
        {
            Group.AllReduce([shared]);
            var agreed = shared.ToArray<double>();
            var reduced = new List<Tensor>(n);
            for (int i = 0; i < n; i++)
            {
                if (agreed[i] == 0) continue; // no rank has a gradient: the optimiser skips it everywhere
                if (grads[i] is null)
                {
                    parameters[i].Grad = Tensors.ZerosLike(parameters[i]);
                    grads[i] = parameters[i].Grad;
                }
                reduced.Add(grads[i]!);
            }
            Group.AllReduce(reduced, average: true);
            return (agreed[n] / Group.WorldSize, agreed[n + 1] > 0);
        }
        finally
        {
            communication.Stop();
        }
    }
}

using LatentDiffusion.Torch;

namespace LatentDiffusion.Training.Toy;

/// <summary>The toy's forward (noising) and reverse (sampling) processes, as frames for plots and animations.</summary>
public static class ToyDiffusion
{
    /// <summary>q(x_t | x_0) of the whole data set for t = 0 … T − 1 (every <paramref name="every"/>-th t).</summary>
    public static IReadOnlyList<PointFrame> ForwardFrames(Tensor data, ToySchedule schedule, Generator random, int every = 1)
    {
        if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), every, "the frame interval must be positive");
        var frames = new List<PointFrame>();
        for (int t = 0; t < schedule.Steps; t += every)
        {
            using var noisy = schedule.Noise(data, t, random);
            frames.Add(new PointFrame(t, noisy.ToArray<float>()));
        }
        return frames;
    }

    /// <summary>
    /// Ancestral sampling from N(0, I): x_T, x_{T−1}, …, x_0 (T + 1 frames, the last the samples), with
    /// the write-up's step x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t)) / √(1 − β_t) + √β_t · z.
    /// </summary>
    public static IReadOnlyList<PointFrame> ReverseFrames(MlpDiffusion model, ToySchedule schedule, int count, Generator random)
    {
        var frames = new List<PointFrame>(schedule.Steps + 1);
        Reverse(model, schedule, count, random, (t, x) => frames.Add(new PointFrame(t, x.ToArray<float>()))).Dispose();
        return frames;
    }

    /// <summary>The final samples x_0 of the reverse process, [count, 2].</summary>
    public static Tensor Sample(MlpDiffusion model, ToySchedule schedule, int count, Generator random) =>
        Reverse(model, schedule, count, random, null);

    private static Tensor Reverse(MlpDiffusion model, ToySchedule schedule, int count, Generator random, Action<int, Tensor>? frame)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "at least one point must be sampled");
        using var noGrad = Autograd.NoGrad();
        var device = model.Parameters().First().Device;
        var x = TrainingRandom.Randn([count, 2], random, device).DetachFromDisposeScope();
        frame?.Invoke(schedule.Steps, x);
        for (int t = schedule.Steps - 1; t >= 0; t--)
        {
            using var scope = DisposeScope.Enter();
            double beta = schedule.Betas[t];
            var steps = Tensors.Full([count], t, DType.Int64, device);
            var eps = model.Forward(x, steps);
            var mean = (x - eps * (beta / Math.Sqrt(1 - schedule.AlphasCumprod[t]))) * (1 / Math.Sqrt(1 - beta));
            var next = scope.Keep(mean + TrainingRandom.RandnLike(x, random) * Math.Sqrt(beta)).DetachFromDisposeScope();
            x.Dispose();
            x = next;
            frame?.Invoke(t, x);
        }
        return x;
    }
}

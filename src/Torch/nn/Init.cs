namespace LatentDiffusion.Torch.NN;

/// <summary>
/// torch.nn.init: in-place initialisers with PyTorch's formulas, so that a seeded generator gives
/// the same initial weights as PyTorch on the CPU.
/// </summary>
public static class Init
{
    [ThreadStatic] private static int skipDepth;

    /// <summary>
    /// Until disposed, random initialisers on this thread do nothing: for building a model whose
    /// every parameter is loaded afterwards (diffusers' low_cpu_mem_usage), which saves the time of
    /// drawing random numbers for hundreds of millions of weights.
    /// </summary>
    public static IDisposable SkipInitialization()
    {
        skipDepth++;
        return new SkipScope();
    }

    public static bool IsSkipping => skipDepth > 0;

    private sealed class SkipScope : IDisposable
    {
        private bool disposed;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            skipDepth--;
        }
    }

    /// <summary>PyTorch's _calculate_fan_in_and_fan_out: dimension 1 and 0 times the receptive field.</summary>
    public static (long FanIn, long FanOut) Fans(long[] shape)
    {
        if (shape.Length < 2) throw new ArgumentException("fan in and fan out need a tensor with at least 2 dimensions");
        long receptive = 1;
        for (int i = 2; i < shape.Length; i++) receptive *= shape[i];
        return (shape[1] * receptive, shape[0] * receptive);
    }

    /// <summary>calculate_gain('leaky_relu', a).</summary>
    public static double LeakyReluGain(double negativeSlope) => Math.Sqrt(2.0 / (1 + negativeSlope * negativeSlope));

    /// <summary>kaiming_uniform_(mode='fan_in', nonlinearity='leaky_relu'): U(−b, b) with b = √3 · gain / √fan_in.</summary>
    public static Tensor KaimingUniform_(Tensor tensor, double a = 0, Generator? generator = null)
    {
        var (fanIn, _) = Fans(tensor.Shape);
        var std = LeakyReluGain(a) / Math.Sqrt(fanIn);
        var bound = Math.Sqrt(3.0) * std;
        return Uniform_(tensor, -bound, bound, generator);
    }

    public static Tensor Uniform_(Tensor tensor, double from, double to, Generator? generator = null)
    {
        if (IsSkipping) return tensor;
        using var noGrad = Autograd.NoGrad();
        return tensor.Uniform_(from, to, generator);
    }

    public static Tensor Normal_(Tensor tensor, double mean = 0, double std = 1, Generator? generator = null)
    {
        if (IsSkipping) return tensor;
        using var noGrad = Autograd.NoGrad();
        return tensor.Normal_(mean, std, generator);
    }

    public static Tensor Zeros_(Tensor tensor)
    {
        using var noGrad = Autograd.NoGrad();
        return tensor.Zero_();
    }

    public static Tensor Ones_(Tensor tensor)
    {
        using var noGrad = Autograd.NoGrad();
        return tensor.Fill_(1);
    }

    /// <summary>
    /// The initialisation of torch.nn.Linear and torch.nn.ConvNd: kaiming_uniform_(a=√5) on the
    /// weight (which is U(−1/√fan_in, 1/√fan_in)), then the bias from the same bound.
    /// </summary>
    internal static void DefaultLinearOrConv(Tensor weight, Tensor? bias, Generator? generator)
    {
        KaimingUniform_(weight, Math.Sqrt(5), generator);
        if (bias is null) return;
        var (fanIn, _) = Fans(weight.Shape);
        var bound = fanIn > 0 ? 1 / Math.Sqrt(fanIn) : 0;
        Uniform_(bias, -bound, bound, generator);
    }
}

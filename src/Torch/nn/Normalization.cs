namespace LatentDiffusion.Torch.NN;

/// <summary>torch.nn.GroupNorm over [N, C, …]: per-channel weight (ones) and bias (zeros) when affine.</summary>
public sealed class GroupNorm : Module<Tensor, Tensor>
{
    public int NumGroups { get; }
    public long NumChannels { get; }
    public double Eps { get; }
    public Tensor? Weight { get; }
    public Tensor? Bias { get; }

    public GroupNorm(int numGroups, long numChannels, double eps = 1e-5, bool affine = true)
    {
        if (numGroups < 1 || numChannels % numGroups != 0)
            throw new ArgumentException($"num_channels ({numChannels}) must be divisible by num_groups ({numGroups})");
        NumGroups = numGroups;
        NumChannels = numChannels;
        Eps = eps;
        Weight = RegisterParameter("weight", affine ? Tensors.Ones([numChannels]) : null);
        Bias = RegisterParameter("bias", affine ? Tensors.Zeros([numChannels]) : null);
    }

    public override Tensor Forward(Tensor input) => Functional.GroupNorm(input, NumGroups, Weight, Bias, Eps);

    /// <summary>silu(Forward(input)), fused into one pass where <see cref="FusedNorm"/> applies.</summary>
    public Tensor ForwardSilu(Tensor input) => Functional.GroupNormSilu(input, NumGroups, Weight, Bias, Eps);
}

/// <summary>torch.nn.LayerNorm over the trailing <see cref="NormalizedShape"/> dimensions.</summary>
public sealed class LayerNorm : Module<Tensor, Tensor>
{
    public long[] NormalizedShape { get; }
    public double Eps { get; }
    public Tensor? Weight { get; }
    public Tensor? Bias { get; }

    public LayerNorm(long normalizedShape, double eps = 1e-5, bool elementwiseAffine = true, bool bias = true)
        : this([normalizedShape], eps, elementwiseAffine, bias)
    {
    }

    public LayerNorm(long[] normalizedShape, double eps = 1e-5, bool elementwiseAffine = true, bool bias = true)
    {
        NormalizedShape = (long[])normalizedShape.Clone();
        Eps = eps;
        Weight = RegisterParameter("weight", elementwiseAffine ? Tensors.Ones(NormalizedShape) : null);
        Bias = RegisterParameter("bias", elementwiseAffine && bias ? Tensors.Zeros(NormalizedShape) : null);
    }

    public override Tensor Forward(Tensor input) => Functional.LayerNorm(input, NormalizedShape, Weight, Bias, Eps);
}

/// <summary>
/// torch.nn.BatchNorm2d: in training mode normalises with the batch statistics and updates the
/// running ones (momentum 0.1, unbiased variance); in evaluation mode uses the running statistics.
/// Keys weight, bias, running_mean, running_var, num_batches_tracked.
/// </summary>
public sealed class BatchNorm2d : Module<Tensor, Tensor>
{
    public long NumFeatures { get; }
    public double Eps { get; }
    public double Momentum { get; }
    public Tensor Weight { get; }
    public Tensor Bias { get; }
    public Tensor RunningMean { get; }
    public Tensor RunningVar { get; }
    public Tensor NumBatchesTracked { get; }

    public BatchNorm2d(long numFeatures, double eps = 1e-5, double momentum = 0.1)
    {
        NumFeatures = numFeatures;
        Eps = eps;
        Momentum = momentum;
        Weight = RegisterParameter("weight", Tensors.Ones([numFeatures]));
        Bias = RegisterParameter("bias", Tensors.Zeros([numFeatures]));
        RunningMean = RegisterBuffer("running_mean", Tensors.Zeros([numFeatures]));
        RunningVar = RegisterBuffer("running_var", Tensors.Ones([numFeatures]));
        NumBatchesTracked = RegisterBuffer("num_batches_tracked", Tensors.Zeros([], DType.Int64));
    }

    public override Tensor Forward(Tensor input)
    {
        if (IsTraining)
        {
            using var noGrad = Autograd.NoGrad();
            NumBatchesTracked.Add_(1);
        }
        // libtorch updates running_mean / running_var in place when training.
        return Functional.BatchNorm(input, RunningMean, RunningVar, Weight, Bias, IsTraining, Momentum, Eps);
    }
}

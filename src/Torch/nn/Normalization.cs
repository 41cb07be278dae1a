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
        Weight = RegisterParameter("weight", affine ? Torch.Ones([numChannels]) : null);
        Bias = RegisterParameter("bias", affine ? Torch.Zeros([numChannels]) : null);
    }

    public override Tensor Forward(Tensor input) => Functional.GroupNorm(input, NumGroups, Weight, Bias, Eps);
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
        Weight = RegisterParameter("weight", elementwiseAffine ? Torch.Ones(NormalizedShape) : null);
        Bias = RegisterParameter("bias", elementwiseAffine && bias ? Torch.Zeros(NormalizedShape) : null);
    }

    public override Tensor Forward(Tensor input) => Functional.LayerNorm(input, NormalizedShape, Weight, Bias, Eps);
}

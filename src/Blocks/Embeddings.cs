using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// diffusers' Timesteps: the sinusoidal embedding of (possibly fractional) timesteps from "Denoising
/// Diffusion Probabilistic Models", with diffusers' options. For half = dim / 2 and i = 0 … half − 1:
/// <code>
/// freq_i = exp(−ln(max_period) · i / (half − downscale_freq_shift))
/// emb    = [sin(scale · t · freq), cos(scale · t · freq)]      (cos first when flip_sin_to_cos)
/// </code>
/// SD U-Nets use flip_sin_to_cos = true, shift 0; the DDPM (CIFAR) U-Net false, shift 1.
/// </summary>
public sealed class Timesteps : Module<Tensor, Tensor>
{
    public int NumChannels { get; }
    public bool FlipSinToCos { get; }
    public double DownscaleFreqShift { get; }
    public double Scale { get; }
    public double MaxPeriod { get; }

    public Timesteps(int numChannels, bool flipSinToCos, double downscaleFreqShift, double scale = 1, double maxPeriod = 10000)
    {
        NumChannels = numChannels;
        FlipSinToCos = flipSinToCos;
        DownscaleFreqShift = downscaleFreqShift;
        Scale = scale;
        MaxPeriod = maxPeriod;
    }

    /// <summary>Embeds timesteps [N] (any numeric dtype) into float32 [N, NumChannels].</summary>
    public override Tensor Forward(Tensor timesteps) =>
        Embed(timesteps, NumChannels, FlipSinToCos, DownscaleFreqShift, Scale, MaxPeriod);

    /// <summary>diffusers' get_timestep_embedding, computed in float32 step by step as the reference does.</summary>
    public static Tensor Embed(Tensor timesteps, int dim, bool flipSinToCos = false, double downscaleFreqShift = 1,
        double scale = 1, double maxPeriod = 10000)
    {
        if (timesteps.Dim != 1) throw new ArgumentException($"timesteps must be a 1-D tensor, got [{string.Join(", ", timesteps.Shape)}]");
        using var scope = DisposeScope.Enter();
        int half = dim / 2;
        var exponent = Tensors.Arange(0, half, 1, DType.Float32, timesteps.Device) * -Math.Log(maxPeriod);
        var frequencies = (exponent / (half - downscaleFreqShift)).Exp();
        var arguments = scale * (timesteps.Unsqueeze(1).Float() * frequencies.Unsqueeze(0));
        var emb = Tensor.Cat([arguments.Sin(), arguments.Cos()], -1);
        if (flipSinToCos) emb = Tensor.Cat([emb.Slice(1, half, long.MaxValue), emb.Slice(1, 0, half)], -1);
        if (dim % 2 == 1) emb = Functional.Pad(emb, [0, 1, 0, 0]);
        return scope.Keep(emb);
    }
}

/// <summary>
/// diffusers' TimestepEmbedding: linear_1 → act → linear_2 (→ post_act). With cond_proj_dim (LCM's
/// guidance-scale embedding, <c>time_cond_proj_dim</c>) the condition is projected and added to the input first.
/// </summary>
public sealed class TimestepEmbedding : Module
{
    private readonly Linear linear1;
    private readonly Linear? condProj;
    private readonly Module<Tensor, Tensor>? act;
    private readonly Linear linear2;
    private readonly Module<Tensor, Tensor>? postAct;

    public TimestepEmbedding(long inChannels, long timeEmbedDim, string? actFn = "silu", long? outDim = null,
        string? postActFn = null, long? condProjDim = null, bool sampleProjBias = true, Generator? generator = null)
    {
        linear1 = RegisterModule("linear_1", new Linear(inChannels, timeEmbedDim, sampleProjBias, generator));
        if (condProjDim is { } c) condProj = RegisterModule("cond_proj", new Linear(c, inChannels, bias: false, generator: generator));
        if (actFn is not null) act = RegisterModule("act", Activations.Create(actFn));
        linear2 = RegisterModule("linear_2", new Linear(timeEmbedDim, outDim ?? timeEmbedDim, sampleProjBias, generator));
        if (postActFn is not null) postAct = RegisterModule("post_act", Activations.Create(postActFn, "timestep_post_act"));
    }

    public Linear Linear1 => linear1;
    public Linear Linear2 => linear2;
    public Linear? CondProj => condProj;

    public Tensor Forward(Tensor sample, Tensor? condition = null)
    {
        using var scope = DisposeScope.Enter();
        if (condition is not null)
        {
            if (condProj is null) throw new InvalidOperationException("this TimestepEmbedding has no cond_proj (time_cond_proj_dim is null)");
            sample = sample + condProj.Forward(condition);
        }
        var x = linear1.Forward(sample);
        if (act is not null) x = act.Forward(x);
        x = linear2.Forward(x);
        if (postAct is not null) x = postAct.Forward(x);
        return scope.Keep(x);
    }
}

/// <summary>
/// diffusers' GaussianFourierProjection (score-SDE "fourier" time embedding): a fixed random vector W
/// (not trained) and <c>[sin(2π·x·W), cos(2π·x·W)]</c> of x = log(σ) (or σ itself without <c>log</c>).
/// </summary>
public sealed class GaussianFourierProjection : Module<Tensor, Tensor>
{
    public Tensor Weight { get; }
    public bool Log { get; }
    public bool FlipSinToCos { get; }

    public GaussianFourierProjection(int embeddingSize = 256, double scale = 1.0, bool log = true, bool flipSinToCos = false,
        Generator? generator = null)
    {
        var w = Tensors.Empty([embeddingSize]);
        Init.Normal_(w, 0, scale, generator);
        Weight = RegisterParameter("weight", w);
        Weight.RequiresGrad = false; // nn.Parameter(..., requires_grad=False): saved, never trained
        Log = log;
        FlipSinToCos = flipSinToCos;
    }

    public override Tensor Forward(Tensor x)
    {
        using var scope = DisposeScope.Enter();
        if (Log) x = x.Log();
        var projected = x.Unsqueeze(1) * Weight.Unsqueeze(0) * 2 * Math.PI;
        var (first, second) = FlipSinToCos ? (projected.Cos(), projected.Sin()) : (projected.Sin(), projected.Cos());
        return scope.Keep(Tensor.Cat([first, second], -1));
    }
}

/// <summary>Timestep arguments as the U-Nets take them: a scalar, one per sample, or one for the whole batch.</summary>
public static class TimestepInput
{
    /// <summary>
    /// The timesteps as a 1-D tensor of length <paramref name="batch"/> on <paramref name="device"/>: a 0-dim
    /// or 1-element tensor is broadcast over the batch (diffusers' <c>timesteps.expand(batch)</c>).
    /// </summary>
    public static Tensor PerSample(Tensor timestep, long batch, Device device)
    {
        using var scope = DisposeScope.Enter();
        var t = timestep.Dim == 0 ? timestep.Reshape(1) : timestep;
        if (t.Dim != 1 || (t.Size(0) != 1 && t.Size(0) != batch))
            throw new ArgumentException($"timestep must be a scalar or hold one value per sample ({batch}), got shape [{string.Join(", ", timestep.Shape)}]");
        if (t.Device != device) t = t.To(device);
        return scope.Keep(t.Size(0) == batch ? t.Alias() : t.Expand(batch));
    }
}

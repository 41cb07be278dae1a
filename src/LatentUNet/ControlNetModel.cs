using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// diffusers' ControlNetModel ("Adding Conditional Control to Text-to-Image Diffusion Models", Zhang et al. 2023): a
/// trainable copy of the U-Net's encoder that reads a conditioning image (edges, depth, pose) and returns what is added
/// to the U-Net's skip connections and mid-block output:
/// <code>
/// emb  = time_embedding(time_proj(t))                                  (the U-Net's, <see cref="UNetParts"/>)
/// h    = conv_in(z_t) + controlnet_cond_embedding(c_image)             c_image in [0, 1]
/// down: h, skips += down_block(h, emb, c)                              the U-Net's blocks
/// mid:  h = mid_block(h, emb, c)
/// out:  down residual i = controlnet_down_blocks[i](skip i) · scale    1×1 "zero convolutions"
///       mid residual    = controlnet_mid_block(h) · scale
/// </code>
/// </summary>
public sealed class ControlNetModel : Module
{
    private readonly Conv2d convIn;
    private readonly UNetParts parts;
    private readonly Linear? encoderHidProj;
    private readonly ControlNetConditioningEmbedding condEmbedding;
    private readonly ModuleList<Module> downBlocks;
    private readonly ModuleList<Conv2d> controlnetDownBlocks;
    private readonly IMidBlock? midBlock;
    private readonly Conv2d controlnetMidBlock;

    public ControlNetModelConfig Config { get; }

    /// <param name="generator">Draws the initial weights (libtorch's global generator when null).</param>
    public ControlNetModel(ControlNetModelConfig config, Generator? generator = null)
    {
        config.Validate();
        Config = config;
        var unet = config.AsUNetConfig();
        var channels = config.BlockOutChannels;

        convIn = RegisterModule("conv_in", new Conv2d(config.InChannels, channels[0], 3, padding: 1, generator: generator));
        parts = UNetParts.CreateTime(this, unet, generator);
        if (config.EncoderHidDim is { } hid)
            encoderHidProj = RegisterModule("encoder_hid_proj", new Linear(hid, config.CrossAttentionDim, generator: generator));
        condEmbedding = RegisterModule("controlnet_cond_embedding", new ControlNetConditioningEmbedding(channels[0],
            config.ConditioningChannels, config.ConditioningEmbeddingOutChannels, generator));

        downBlocks = parts.CreateDownBlocks(this, generator);
        // One zero convolution per skip connection: conv_in's, then each block's resnets and downsampler.
        controlnetDownBlocks = RegisterModule("controlnet_down_blocks", new ModuleList<Conv2d>());
        controlnetDownBlocks.Add(ZeroConv(channels[0], generator));
        for (int i = 0; i < channels.Length; i++)
        {
            int count = config.LayersPerBlock + (i < channels.Length - 1 ? 1 : 0);
            for (int j = 0; j < count; j++) controlnetDownBlocks.Add(ZeroConv(channels[i], generator));
        }
        midBlock = parts.CreateMidBlock(this, generator);
        controlnetMidBlock = RegisterModule("controlnet_mid_block", ZeroConv(channels[^1], generator));
    }

    // diffusers zero-initialises them (zero_module) so that training starts from the unchanged U-Net; loaded weights replace that.
    private static Conv2d ZeroConv(long channels, Generator? generator)
    {
        var conv = new Conv2d(channels, channels, 1, generator: generator);
        if (!Init.IsSkipping)
        {
            Init.Zeros_(conv.Weight);
            Init.Zeros_(conv.Bias!);
        }
        return conv;
    }

    /// <summary>Skip connections it steers (the U-Net's down_block_res_samples), one residual each.</summary>
    public int ResidualCount => controlnetDownBlocks.Count;

    /// <summary>How a ControlNetModel lives in a diffusers folder (config.json + diffusion_pytorch_model.safetensors).</summary>
    public static PretrainedFormat<ControlNetModel, ControlNetModelConfig> Format { get; } = new()
    {
        ReadConfig = ControlNetModelConfig.Load,
        Create = config => new ControlNetModel(config),
        WriteConfig = (path, model) => ConfigJson.Save(path, model.Config, ControlNetModelConfig.ClassName),
    };

    /// <summary>Loads a diffusers ControlNetModel folder, in evaluation mode.</summary>
    public static ControlNetModel FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>Writes config.json and diffusion_pytorch_model[.variant].safetensors so that diffusers' from_pretrained loads them.</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);

    /// <summary>
    /// The residuals for latents <paramref name="sample"/> [N, C, h, w] at <paramref name="timestep"/> given text states
    /// <paramref name="encoderHiddenStates"/> and the conditioning image <paramref name="controlnetCond"/> [N, 3, H, W] in [0, 1]
    /// (H = 8h for Stable Diffusion), all multiplied by <paramref name="conditioningScale"/>. <paramref name="guessMode"/>:
    /// diffusers' guess mode scales the residuals from 0.1 (the first skip) to 1.0 (the mid block) on a log scale.
    /// </summary>
    public UNetResiduals Forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor controlnetCond,
        double conditioningScale = 1.0, bool guessMode = false, Tensor? timestepCond = null, Tensor? classLabels = null)
    {
        // Inference on the CPU: the batch's samples as concurrent streams, as the U-Net's (BatchStreams).
        if (BatchStreams.TryRun(sample, s => Pass(s.Of(sample)!, s.Of(timestep)!, s.Of(encoderHiddenStates)!, s.Of(controlnetCond)!,
                conditioningScale, guessMode, s.Of(timestepCond), s.Of(classLabels)), UNetResiduals.Join, out var output))
            return output!;
        return Pass(sample, timestep, encoderHiddenStates, controlnetCond, conditioningScale, guessMode, timestepCond, classLabels);
    }

    private UNetResiduals Pass(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor controlnetCond,
        double conditioningScale, bool guessMode, Tensor? timestepCond, Tensor? classLabels)
    {
        using var scope = DisposeScope.Enter();
        if (Config.ControlnetConditioningChannelOrder == "bgr") controlnetCond = controlnetCond.Flip(1);

        // 1. time (and class) embedding
        var emb = parts.Embed(sample, timestep, timestepCond, classLabels);
        var context = encoderHidProj is not null ? encoderHidProj.Forward(encoderHiddenStates) : encoderHiddenStates;

        // 2. the conditioning image's embedding is added to conv_in's output
        var cond = condEmbedding.Forward(controlnetCond.To(sample.DType));
        if (cond.Size(2) != sample.Size(2) || cond.Size(3) != sample.Size(3))
            throw new ArgumentException($"the control image embeds to {cond.Size(3)}×{cond.Size(2)} but the latents are {sample.Size(3)}×{sample.Size(2)}: the control image must have the output's size");
        var h = convIn.Forward(sample) + cond;

        // 3. down and 4. mid: the U-Net's own blocks
        var skips = UNetParts.Down(downBlocks, h, emb, context);
        h = skips[^1];
        if (midBlock is not null) h = midBlock.Forward(h, emb, context);

        // 5. zero convolutions, 6. scaling
        var down = new Tensor[skips.Count];
        var scales = Scales(skips.Count + 1, conditioningScale, guessMode && !Config.GlobalPoolConditions);
        for (int i = 0; i < skips.Count; i++) down[i] = Pool(controlnetDownBlocks[i].Forward(skips[i]) * scales[i]);
        var mid = Pool(controlnetMidBlock.Forward(h) * scales[^1]);
        foreach (var t in down) scope.Keep(t);
        return new UNetResiduals(down, scope.Keep(mid));
    }

    /// <summary>The residuals at a (possibly fractional) <paramref name="timestep"/> shared by the batch.</summary>
    public UNetResiduals Forward(Tensor sample, double timestep, Tensor encoderHiddenStates, Tensor controlnetCond,
        double conditioningScale = 1.0, bool guessMode = false)
    {
        using var t = Tensors.Scalar(timestep, DType.Float64, sample.Device);
        return Forward(sample, t, encoderHiddenStates, controlnetCond, conditioningScale, guessMode);
    }

    /// <summary>
    /// Per residual scale: conditioning_scale everywhere, or in guess mode torch.logspace(−1, 0, n) × conditioning_scale
    /// (computed in float32 as torch does).
    /// </summary>
    private static double[] Scales(int n, double conditioningScale, bool guessMode)
    {
        if (!guessMode) return Enumerable.Repeat(conditioningScale, n).ToArray();
        return Enumerable.Range(0, n).Select(i =>
        {
            var exponent = n == 1 ? -1f : -1f + i * (1f / (n - 1));
            return (double)(MathF.Pow(10f, exponent) * (float)conditioningScale);
        }).ToArray();
    }

    // global_pool_conditions (shuffle ControlNets): each residual becomes its spatial mean.
    private Tensor Pool(Tensor residual) => Config.GlobalPoolConditions ? residual.Mean([2, 3], keepDim: true) : residual;
}

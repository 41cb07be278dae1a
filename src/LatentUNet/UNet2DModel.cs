using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// diffusers' UNet2DModel: the unconditional pixel-space U-Net of DDPM (Ho et al. 2020), e.g.
/// google/ddpm-cifar10-32. Given a noisy image x_t and its timestep t it predicts the noise ε:
/// <code>
/// emb  = time_embedding(time_proj(t))                    (+ class embedding)
/// h    = conv_in(x_t)
/// down: h, skips += down_block(h, emb)                   resnets (+ self-attention), downsample
/// mid:  h = mid_block(h, emb)                            resnet, attention, resnet
/// up:   h = up_block(h, skips.pop(…), emb)               resnets over [h, skip], upsample
/// ε    = conv_out(silu(conv_norm_out(h)))                (÷ σ for the "fourier" score model)
/// </code>
/// Submodules carry diffusers' attribute names, so its safetensors load as they are and
/// <see cref="Save"/> writes a folder diffusers loads.
/// </summary>
public sealed class UNet2DModel : Module
{
    private readonly Conv2d convIn;
    private readonly Module<Tensor, Tensor> timeProj;
    private readonly TimestepEmbedding timeEmbedding;
    private readonly Module? classEmbedding;
    private readonly ModuleList<Module> downBlocks;
    private readonly UNetMidBlock2D midBlock;
    private readonly ModuleList<Module> upBlocks;
    private readonly GroupNorm convNormOut;
    private readonly Module<Tensor, Tensor> convAct;
    private readonly Conv2d convOut;

    public UNet2DModelConfig Config { get; }

    /// <param name="generator">Draws the initial weights (libtorch's global generator when null).</param>
    public UNet2DModel(UNet2DModelConfig config, Generator? generator = null)
    {
        config.Validate();
        Config = config;
        var channels = config.BlockOutChannels;
        long timeEmbedDim = channels[0] * 4;

        convIn = RegisterModule("conv_in", new Conv2d(config.InChannels, channels[0], 3, padding: 1, generator: generator));

        long timestepInputDim = channels[0];
        switch (config.TimeEmbeddingType)
        {
            case "fourier":
                timeProj = new GaussianFourierProjection(channels[0], scale: 16, generator: generator);
                timestepInputDim = 2 * channels[0];
                break;
            case "learned":
                timeProj = new Embedding(config.NumTrainTimesteps!.Value, channels[0], generator);
                break;
            default:
                timeProj = new Timesteps(channels[0], config.FlipSinToCos, config.FreqShift);
                break;
        }
        RegisterModule("time_proj", timeProj);
        timeEmbedding = RegisterModule("time_embedding", new TimestepEmbedding(timestepInputDim, timeEmbedDim, generator: generator));
        classEmbedding = ClassEmbedding.Create(config.ClassEmbedType, config.NumClassEmbeds, "silu", null, timeEmbedDim, timestepInputDim, generator);
        if (classEmbedding is not null) RegisterModule("class_embedding", classEmbedding);

        var resnet = new ResnetSettings(timeEmbedDim, config.NormEps, config.ActFn, config.NormNumGroups, config.Dropout, config.ResnetTimeScaleShift);
        int n = channels.Length;

        downBlocks = RegisterModule("down_blocks", new ModuleList<Module>());
        long output = channels[0];
        for (int i = 0; i < n; i++)
        {
            long input = output;
            output = channels[i];
            bool final = i == n - 1;
            var headDim = config.AttentionHeadDim ?? (int)output;
            downBlocks.Add(UNetBlocks.GetDownBlock(config.DownBlockTypes[i], $"down_block_types[{i}]", config.LayersPerBlock, input, output,
                resnet, addDownsample: !final, config.DownsamplePadding, attentionHeadDim: headDim, downsampleType: config.DownsampleType,
                generator: generator));
        }

        midBlock = RegisterModule("mid_block", new UNetMidBlock2D(channels[^1], resnet with { OutputScaleFactor = config.MidBlockScaleFactor },
            attnGroups: config.AttnNormNumGroups, addAttention: config.AddAttention, attentionHeadDim: config.AttentionHeadDim ?? channels[^1],
            generator: generator));

        upBlocks = RegisterModule("up_blocks", new ModuleList<Module>());
        var reversed = channels.Reverse().ToArray();
        output = reversed[0];
        for (int i = 0; i < n; i++)
        {
            long previous = output;
            output = reversed[i];
            long input = reversed[Math.Min(i + 1, n - 1)];
            bool final = i == n - 1;
            var headDim = config.AttentionHeadDim ?? (int)output;
            upBlocks.Add(UNetBlocks.GetUpBlock(config.UpBlockTypes[i], $"up_block_types[{i}]", config.LayersPerBlock + 1, input, output,
                previous, resnet, addUpsample: !final, attentionHeadDim: headDim, upsampleType: config.UpsampleType, generator: generator));
        }

        convNormOut = RegisterModule("conv_norm_out", new GroupNorm(config.NormNumGroups, channels[0], config.NormEps));
        convAct = RegisterModule("conv_act", new SiLU());
        convOut = RegisterModule("conv_out", new Conv2d(channels[0], config.OutChannels, 3, padding: 1, generator: generator));
    }

    /// <summary>How a UNet2DModel lives in a diffusers folder (config.json + diffusion_pytorch_model.safetensors).</summary>
    public static PretrainedFormat<UNet2DModel, UNet2DModelConfig> Format { get; } = new()
    {
        ReadConfig = UNet2DModelConfig.Load,
        Create = config => new UNet2DModel(config),
        WriteConfig = (path, model) => ConfigJson.Save(path, model.Config, UNet2DModelConfig.ClassName),
    };

    /// <summary>Loads a diffusers UNet2DModel folder (config.json + diffusion_pytorch_model[.variant].safetensors), in evaluation mode.</summary>
    public static UNet2DModel FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>Writes config.json and diffusion_pytorch_model[.variant].safetensors so that diffusers' from_pretrained loads them.</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);

    /// <summary>The noise predicted for <paramref name="sample"/> [N, C, H, W] at an integer <paramref name="timestep"/>.</summary>
    public Tensor Forward(Tensor sample, long timestep, Tensor? classLabels = null)
    {
        using var t = Tensors.Scalar(timestep, DType.Int64, sample.Device);
        return Forward(sample, t, classLabels);
    }

    /// <summary>
    /// The noise predicted for <paramref name="sample"/> [N, C, H, W] at <paramref name="timestep"/> (a scalar
    /// or one value per sample). <paramref name="classLabels"/> [N] are required by class-conditional models.
    /// </summary>
    public Tensor Forward(Tensor sample, Tensor timestep, Tensor? classLabels = null)
    {
        // Inference on the CPU: the batch's samples as concurrent streams, each on its share of the threads (BatchStreams).
        if (BatchStreams.TryRun(sample, s => Pass(s.Of(sample)!, s.Of(timestep)!, s.Of(classLabels)), out var output)) return output;
        return Pass(sample, timestep, classLabels);
    }

    private Tensor Pass(Tensor sample, Tensor timestep, Tensor? classLabels)
    {
        using var scope = DisposeScope.Enter();
        var dtype = convIn.Weight.DType;
        if (Config.CenterInputSample) sample = 2 * sample - 1.0;

        // 1. time (and class) embedding
        var timesteps = TimestepInput.PerSample(timestep, sample.Size(0), sample.Device);
        var emb = timeEmbedding.Forward(timeProj.Forward(timesteps).To(dtype));
        if (classEmbedding is not null)
            emb = emb + ClassEmbedding.Embed(classEmbedding, Config.ClassEmbedType, classLabels, timeProj, dtype);
        else if (classLabels is not null)
            throw new ArgumentException("class labels were given but the model has no class embedding (num_class_embeds is null)");

        // 2. down: every state is kept for the skip connections
        var h = convIn.Forward(sample);
        var skips = new List<Tensor> { h };
        foreach (IDownBlock block in downBlocks)
        {
            var states = block.Forward(h, emb);
            skips.AddRange(states);
            h = states[^1];
        }

        // 3. mid, 4. up: each up block consumes its skips, which are freed at once
        h = midBlock.Forward(h, emb);
        foreach (IUpBlock block in upBlocks)
        {
            var taken = skips.GetRange(skips.Count - block.ResnetCount, block.ResnetCount);
            skips.RemoveRange(skips.Count - block.ResnetCount, block.ResnetCount);
            var next = block.Forward(h, taken, emb);
            h.Dispose();
            foreach (var s in taken) s.Dispose();
            h = next;
        }

        // 5. out
        var output = convOut.Forward(Activations.GroupNormThen(convNormOut, convAct, h));
        if (Config.TimeEmbeddingType == "fourier")
            output = output / timesteps.Reshape(-1, 1, 1, 1); // score-SDE convention: the output is divided by σ
        return scope.Keep(output);
    }
}

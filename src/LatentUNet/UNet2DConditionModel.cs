using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// diffusers' UNet2DConditionModel, the latent-diffusion U-Net of Stable Diffusion (Rombach et al. 2022):
/// it predicts the noise ε in latents z_t at timestep t, conditioned on text states c through
/// cross-attention:
/// <code>
/// emb  = time_embedding(time_proj(t), timestep_cond)        (+ class embedding)
/// h    = conv_in(z_t)
/// down: h, skips += down_block(h, emb, c)                    resnets + transformers, downsample
/// mid:  h = mid_block(h, emb, c)                             resnet, transformer, resnet
/// up:   h = up_block(h, skips.pop(…), emb, c)                resnets over [h, skip] + transformers, upsample
/// ε    = conv_out(silu(conv_norm_out(h)))
/// </code>
/// Submodules carry diffusers' attribute names, so its safetensors load as they are and
/// <see cref="Save"/> writes a folder diffusers loads.
/// </summary>
public sealed class UNet2DConditionModel : Module
{
    private readonly Conv2d convIn;
    private readonly Module<Tensor, Tensor> timeProj;
    private readonly TimestepEmbedding timeEmbedding;
    private readonly Linear? encoderHidProj;
    private readonly Module? classEmbedding;
    private readonly TextTimeEmbedding? addEmbedding;
    private readonly Module<Tensor, Tensor>? timeEmbedAct;
    private readonly ModuleList<Module> downBlocks;
    private readonly IMidBlock? midBlock;
    private readonly ModuleList<Module> upBlocks;
    private readonly GroupNorm convNormOut;
    private readonly Module<Tensor, Tensor> convAct;
    private readonly Conv2d convOut;

    public UNet2DConditionModelConfig Config { get; }

    /// <summary>Number of upsampling stages: inputs whose size is not a multiple of 2^this get explicit upsample sizes.</summary>
    public int NumUpsamplers { get; }

    /// <param name="generator">Draws the initial weights (libtorch's global generator when null).</param>
    public UNet2DConditionModel(UNet2DConditionModelConfig config, Generator? generator = null)
    {
        config.Validate();
        Config = config;
        var channels = config.BlockOutChannels;
        int n = channels.Length;
        int groups = config.NormNumGroups!.Value;

        convIn = RegisterModule("conv_in", new Conv2d(config.InChannels, channels[0], config.ConvInKernel, padding: (config.ConvInKernel - 1) / 2,
            generator: generator));

        // time
        long timeEmbedDim, timestepInputDim;
        if (config.TimeEmbeddingType == "fourier")
        {
            timeEmbedDim = config.TimeEmbeddingDim ?? channels[0] * 2;
            if (timeEmbedDim % 2 != 0) throw ConfigErrors.Invalid("time_embedding_dim", $"must be even for fourier embeddings, is {timeEmbedDim}");
            timeProj = new GaussianFourierProjection((int)(timeEmbedDim / 2), log: false, flipSinToCos: config.FlipSinToCos, generator: generator);
            timestepInputDim = timeEmbedDim;
        }
        else
        {
            timeEmbedDim = config.TimeEmbeddingDim ?? channels[0] * 4;
            timeProj = new Timesteps(channels[0], config.FlipSinToCos, config.FreqShift);
            timestepInputDim = channels[0];
        }
        RegisterModule("time_proj", timeProj);
        timeEmbedding = RegisterModule("time_embedding", new TimestepEmbedding(timestepInputDim, timeEmbedDim, config.ActFn,
            postActFn: config.TimestepPostAct, condProjDim: config.TimeCondProjDim, generator: generator));

        if (config.EncoderHidDim is { } hid)
            encoderHidProj = RegisterModule("encoder_hid_proj", new Linear(hid, config.CrossAttentionDim.Value, generator: generator));

        classEmbedding = ClassEmbedding.Create(config.ClassEmbedType, config.NumClassEmbeds, config.ActFn,
            config.ProjectionClassEmbeddingsInputDim, timeEmbedDim, timestepInputDim, generator);
        if (classEmbedding is not null) RegisterModule("class_embedding", classEmbedding);
        if (config.AdditionEmbedType == "text_time") addEmbedding = new TextTimeEmbedding(this, config, timeEmbedDim, generator);
        if (config.TimeEmbeddingActFn is { } act) timeEmbedAct = RegisterModule("time_embed_act", Activations.Create(act, "time_embedding_act_fn"));

        // per-block settings; attention_head_dim is the head count of the cross-attention blocks
        var onlyCross = config.OnlyCrossAttention.PerBlock(n, "only_cross_attention");
        var heads = config.AttentionHeadDim.PerBlock(n, "attention_head_dim");
        var crossDims = config.CrossAttentionDim.PerBlock(n, "cross_attention_dim");
        var layers = config.LayersPerBlock.PerBlock(n, "layers_per_block");
        var transformerLayers = config.TransformerLayersPerBlock.PerBlock(n, "transformer_layers_per_block");
        long blocksTimeEmbedDim = config.ClassEmbeddingsConcat ? timeEmbedDim * 2 : timeEmbedDim;
        var resnet = new ResnetSettings(blocksTimeEmbedDim, config.NormEps, config.ActFn, groups, config.Dropout, config.ResnetTimeScaleShift);
        CrossAttentionSettings Attention(int i) =>
            new(heads[i], crossDims[i], transformerLayers[i], config.UseLinearProjection, onlyCross[i], config.UpcastAttention);

        downBlocks = RegisterModule("down_blocks", new ModuleList<Module>());
        long output = channels[0];
        for (int i = 0; i < n; i++)
        {
            long input = output;
            output = channels[i];
            bool final = i == n - 1;
            // for AttnDownBlock2D, attention_head_dim is what its name says, the channels per head
            downBlocks.Add(UNetBlocks.GetDownBlock(config.DownBlockTypes[i], $"down_block_types[{i}]", layers[i], input, output, resnet,
                addDownsample: !final, config.DownsamplePadding, Attention(i), attentionHeadDim: heads[i], generator: generator));
        }

        var midResnet = resnet with { OutputScaleFactor = config.MidBlockScaleFactor };
        midBlock = config.MidBlockType switch
        {
            "UNetMidBlock2DCrossAttn" => new UNetMidBlock2DCrossAttn(channels[^1], midResnet, Attention(n - 1), generator: generator),
            "UNetMidBlock2D" => new UNetMidBlock2D(channels[^1], midResnet, numLayers: 0, addAttention: false, generator: generator),
            _ => null,
        };
        if (midBlock is not null) RegisterModule("mid_block", (Module)midBlock);

        upBlocks = RegisterModule("up_blocks", new ModuleList<Module>());
        var reversed = channels.Reverse().ToArray();
        output = reversed[0];
        for (int i = 0; i < n; i++)
        {
            bool final = i == n - 1;
            long previous = output;
            output = reversed[i];
            long input = reversed[Math.Min(i + 1, n - 1)];
            int r = n - 1 - i; // the settings of the mirrored down block
            if (!final) NumUpsamplers++;
            // diffusers indexes attention_head_dim without reversing it here
            upBlocks.Add(UNetBlocks.GetUpBlock(config.UpBlockTypes[i], $"up_block_types[{i}]", layers[r] + 1, input, output, previous, resnet,
                addUpsample: !final, Attention(r), attentionHeadDim: heads[i], generator: generator));
        }

        convNormOut = RegisterModule("conv_norm_out", new GroupNorm(groups, channels[0], config.NormEps));
        convAct = RegisterModule("conv_act", Activations.Create(config.ActFn));
        convOut = RegisterModule("conv_out", new Conv2d(channels[0], config.OutChannels, config.ConvOutKernel, padding: (config.ConvOutKernel - 1) / 2,
            generator: generator));
    }

    /// <summary>How a UNet2DConditionModel lives in a diffusers folder (config.json + diffusion_pytorch_model.safetensors).</summary>
    public static PretrainedFormat<UNet2DConditionModel, UNet2DConditionModelConfig> Format { get; } = new()
    {
        ReadConfig = UNet2DConditionModelConfig.Load,
        Create = config => new UNet2DConditionModel(config),
        WriteConfig = (path, model) => ConfigJson.Save(path, model.Config, UNet2DConditionModelConfig.ClassName),
    };

    /// <summary>Loads a diffusers UNet2DConditionModel folder (config.json + diffusion_pytorch_model[.variant].safetensors), in evaluation mode.</summary>
    public static UNet2DConditionModel FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>Writes config.json and diffusion_pytorch_model[.variant].safetensors so that diffusers' from_pretrained loads them.</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);

    /// <summary>The noise predicted at a (possibly fractional) <paramref name="timestep"/> shared by the batch.</summary>
    public Tensor Forward(Tensor sample, double timestep, Tensor encoderHiddenStates, Tensor? timestepCond = null, Tensor? classLabels = null,
        AddedConditions? added = null)
    {
        // diffusers turns a Python float into a float64 tensor; the embedding computes in float32 either way.
        using var t = Tensors.Scalar(timestep, DType.Float64, sample.Device);
        return Forward(sample, t, encoderHiddenStates, timestepCond, classLabels, added);
    }

    /// <summary>True for addition_embed_type "text_time" (SDXL): a forward needs <see cref="AddedConditions"/>.</summary>
    public bool TakesAddedConditions => addEmbedding is not null;

    /// <summary>"text_time" models: the width of add_embedding's input (pooled text dim + time ids × addition_time_embed_dim).</summary>
    public int? AddedEmbeddingInputDim => addEmbedding?.InputDim;

    /// <summary>
    /// The noise predicted for latents <paramref name="sample"/> [N, C, H, W] at <paramref name="timestep"/>
    /// (0-dim, [1] or [N]; integer or fractional) given text states <paramref name="encoderHiddenStates"/>
    /// [N, S, cross_attention_dim]. <paramref name="timestepCond"/> [N, time_cond_proj_dim] feeds LCM's
    /// guidance embedding; <paramref name="classLabels"/> class-conditional models; <paramref name="added"/> (diffusers'
    /// added_cond_kwargs) the pooled text embeddings and time ids of addition_embed_type "text_time" (SDXL).
    /// </summary>
    public Tensor Forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor? timestepCond = null, Tensor? classLabels = null,
        AddedConditions? added = null)
    {
        using var scope = DisposeScope.Enter();
        var dtype = sample.DType;

        // Inputs whose size is not a multiple of the total upsampling factor need explicit upsample sizes.
        long factor = 1L << NumUpsamplers;
        bool forwardUpsampleSize = sample.Size(-1) % factor != 0 || sample.Size(-2) % factor != 0;

        if (Config.CenterInputSample) sample = 2 * sample - 1.0;

        // 1. time (and class) embedding
        var timesteps = TimestepInput.PerSample(timestep, sample.Size(0), sample.Device);
        var emb = timeEmbedding.Forward(timeProj.Forward(timesteps).To(dtype), timestepCond);
        if (classEmbedding is not null)
        {
            var classEmb = ClassEmbedding.Embed(classEmbedding, Config.ClassEmbedType, classLabels, timeProj, dtype);
            emb = Config.ClassEmbeddingsConcat ? Tensor.Cat([emb, classEmb], -1) : emb + classEmb;
        }
        else if (classLabels is not null)
        {
            throw new ArgumentException("class labels were given but the model has no class embedding");
        }
        if (addEmbedding is not null) emb = emb + addEmbedding.Forward(added, sample.Size(0), emb.DType);
        else if (added is not null)
            throw new ArgumentException("added conditions (pooled text embeddings, time ids) were given but the U-Net has no addition_embed_type \"text_time\"");
        if (timeEmbedAct is not null) emb = timeEmbedAct.Forward(emb);
        var context = encoderHidProj is not null ? encoderHidProj.Forward(encoderHiddenStates) : encoderHiddenStates;

        // 2. down: every state is kept for the skip connections
        var h = convIn.Forward(sample);
        var skips = new List<Tensor> { h };
        foreach (IDownBlock block in downBlocks)
        {
            var states = block.Forward(h, emb, context);
            skips.AddRange(states);
            h = states[^1];
        }

        // 3. mid
        if (midBlock is not null) h = midBlock.Forward(h, emb, context);

        // 4. up: each block consumes its skips, which are freed at once
        for (int i = 0; i < upBlocks.Count; i++)
        {
            var block = (IUpBlock)upBlocks[i];
            var taken = skips.GetRange(skips.Count - block.ResnetCount, block.ResnetCount);
            skips.RemoveRange(skips.Count - block.ResnetCount, block.ResnetCount);
            (long, long)? upsampleSize = null;
            if (i < upBlocks.Count - 1 && forwardUpsampleSize) upsampleSize = (skips[^1].Size(2), skips[^1].Size(3));
            var next = block.Forward(h, taken, emb, context, upsampleSize);
            if (!taken.Contains(h)) h.Dispose();
            foreach (var s in taken) s.Dispose();
            h = next;
        }

        // 5. out
        var output = convOut.Forward(convAct.Forward(convNormOut.Forward(h)));
        return scope.Keep(output);
    }
}

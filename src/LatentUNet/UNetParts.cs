using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// The encoder half a conditional U-Net shares with its ControlNet (diffusers builds ControlNetModel by copying these
/// lines of UNet2DConditionModel; here both call them): the time (and class) embedding, the down blocks and the mid
/// block, built from one <see cref="UNet2DConditionModelConfig"/> and registered on the owning model under diffusers'
/// names (time_proj, time_embedding, class_embedding, down_blocks, mid_block).
/// </summary>
internal sealed class UNetParts
{
    public required Module<Tensor, Tensor> TimeProj { get; init; }
    public required TimestepEmbedding TimeEmbedding { get; init; }
    public Module? ClassEmbedding { get; init; }
    public long TimeEmbedDim { get; init; }
    public long TimestepInputDim { get; init; }
    public required UNet2DConditionModelConfig Config { get; init; }

    /// <summary>time_proj, time_embedding and class_embedding of <paramref name="config"/>, registered on <paramref name="owner"/>.</summary>
    public static UNetParts CreateTime(Module owner, UNet2DConditionModelConfig config, Generator? generator)
    {
        var channels = config.BlockOutChannels;
        long timeEmbedDim, timestepInputDim;
        Module<Tensor, Tensor> timeProj;
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
        owner.RegisterModule("time_proj", timeProj);
        var timeEmbedding = owner.RegisterModule("time_embedding", new TimestepEmbedding(timestepInputDim, timeEmbedDim, config.ActFn,
            postActFn: config.TimestepPostAct, condProjDim: config.TimeCondProjDim, generator: generator));
        return new UNetParts
        {
            Config = config,
            TimeProj = timeProj,
            TimeEmbedding = timeEmbedding,
            TimeEmbedDim = timeEmbedDim,
            TimestepInputDim = timestepInputDim,
            ClassEmbedding = RegisterClassEmbedding(owner, config, timeEmbedDim, timestepInputDim, generator),
        };
    }

    private static Module? RegisterClassEmbedding(Module owner, UNet2DConditionModelConfig config, long timeEmbedDim, long timestepInputDim,
        Generator? generator)
    {
        var embedding = LatentUNet.ClassEmbedding.Create(config.ClassEmbedType, config.NumClassEmbeds, config.ActFn,
            config.ProjectionClassEmbeddingsInputDim, timeEmbedDim, timestepInputDim, generator);
        return embedding is null ? null : owner.RegisterModule("class_embedding", embedding);
    }

    /// <summary>The resnet settings every block shares (the time embedding width doubles when class embeddings are concatenated).</summary>
    public ResnetSettings Resnet => new(Config.ClassEmbeddingsConcat ? TimeEmbedDim * 2 : TimeEmbedDim, Config.NormEps, Config.ActFn,
        Config.NormNumGroups!.Value, Config.Dropout, Config.ResnetTimeScaleShift);

    /// <summary>The cross-attention settings of block <paramref name="i"/>; attention_head_dim is the head count of the cross-attention blocks.</summary>
    public CrossAttentionSettings Attention(int i)
    {
        int n = Config.BlockOutChannels.Length;
        return new(Config.AttentionHeadDim.PerBlock(n, "attention_head_dim")[i], Config.CrossAttentionDim.PerBlock(n, "cross_attention_dim")[i],
            Config.TransformerLayersPerBlock.PerBlock(n, "transformer_layers_per_block")[i], Config.UseLinearProjection,
            Config.OnlyCrossAttention.PerBlock(n, "only_cross_attention")[i], Config.UpcastAttention);
    }

    /// <summary>down_blocks, registered on <paramref name="owner"/>.</summary>
    public ModuleList<Module> CreateDownBlocks(Module owner, Generator? generator)
    {
        var channels = Config.BlockOutChannels;
        int n = channels.Length;
        var heads = Config.AttentionHeadDim.PerBlock(n, "attention_head_dim");
        var layers = Config.LayersPerBlock.PerBlock(n, "layers_per_block");
        var downBlocks = owner.RegisterModule("down_blocks", new ModuleList<Module>());
        long output = channels[0];
        for (int i = 0; i < n; i++)
        {
            long input = output;
            output = channels[i];
            bool final = i == n - 1;
            // for AttnDownBlock2D, attention_head_dim is what its name says, the channels per head
            downBlocks.Add(UNetBlocks.GetDownBlock(Config.DownBlockTypes[i], $"down_block_types[{i}]", layers[i], input, output, Resnet,
                addDownsample: !final, Config.DownsamplePadding, Attention(i), attentionHeadDim: heads[i], generator: generator));
        }
        return downBlocks;
    }

    /// <summary>mid_block (none for mid_block_type null), registered on <paramref name="owner"/>.</summary>
    public IMidBlock? CreateMidBlock(Module owner, Generator? generator)
    {
        var channels = Config.BlockOutChannels;
        var midResnet = Resnet with { OutputScaleFactor = Config.MidBlockScaleFactor };
        IMidBlock? midBlock = Config.MidBlockType switch
        {
            "UNetMidBlock2DCrossAttn" => new UNetMidBlock2DCrossAttn(channels[^1], midResnet, Attention(channels.Length - 1), generator: generator),
            "UNetMidBlock2D" => new UNetMidBlock2D(channels[^1], midResnet, numLayers: 0, addAttention: false, generator: generator),
            _ => null,
        };
        if (midBlock is not null) owner.RegisterModule("mid_block", (Module)midBlock);
        return midBlock;
    }

    /// <summary>
    /// emb = time_embedding(time_proj(t), timestep_cond) (+ or ⧺ the class embedding) for a batch of <paramref name="sample"/>;
    /// the sinusoidal projection is computed in float32 and cast to the sample's dtype, as diffusers does.
    /// </summary>
    public Tensor Embed(Tensor sample, Tensor timestep, Tensor? timestepCond, Tensor? classLabels)
    {
        using var scope = DisposeScope.Enter();
        var dtype = sample.DType;
        var timesteps = TimestepInput.PerSample(timestep, sample.Size(0), sample.Device);
        var emb = TimeEmbedding.Forward(TimeProj.Forward(timesteps).To(dtype), timestepCond);
        if (ClassEmbedding is not null)
        {
            var classEmb = LatentUNet.ClassEmbedding.Embed(ClassEmbedding, Config.ClassEmbedType, classLabels, TimeProj, dtype);
            emb = Config.ClassEmbeddingsConcat ? Tensor.Cat([emb, classEmb], -1) : emb + classEmb;
        }
        else if (classLabels is not null)
        {
            throw new ArgumentException("class labels were given but the model has no class embedding");
        }
        return scope.Keep(emb);
    }

    /// <summary>
    /// The down pass from <paramref name="h"/> (conv_in's output, itself the first skip): every block's states are kept for
    /// the skip connections (diffusers' down_block_res_samples); the last is the mid block's input.
    /// </summary>
    public static List<Tensor> Down(IEnumerable<Module> downBlocks, Tensor h, Tensor emb, Tensor? context)
    {
        var skips = new List<Tensor> { h };
        foreach (IDownBlock block in downBlocks)
        {
            var states = block.Forward(h, emb, context);
            skips.AddRange(states);
            h = states[^1];
        }
        return skips;
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet.ConvNeXt;

/// <summary>
/// The ConvNeXt U-Net of the aerial-imagery DDPM write-up ("TwoResUNet"; with
/// <see cref="ConvNeXtUNetConfig.AttentionGates"/> its "AttentionUNet"): a noise predictor ε(x_t, t).
/// Each level has two ConvNeXt blocks and pushes both of their outputs as skips (two skips per level,
/// against over-fitting); every level but the last ends in a 2×2 pixel-unshuffle downsampling, the
/// last in a 3×3 conv. The decoder mirrors it, concatenating one skip before each block (optionally
/// through an attention gate shared by the level's two skips), and a final ConvNeXt block sees the
/// output of the input convolution again. Parameter names are the PyTorch module's, so a state dict
/// saved from the write-up's code loads as it is.
/// </summary>
public sealed class ConvNeXtUNet : Module
{

    private readonly Conv2d initConv;
    private readonly Sequential timeMlp;
    private readonly List<Level> downs = [];
    private readonly List<Level> ups = [];
    private readonly ConvNeXtBlock midBlock1, midBlock2;
    private readonly ConvNeXtBlock finalResBlock;
    private readonly Conv2d finalConv;

    private sealed record Level(AttentionGate? Gate, ConvNeXtBlock Block1, ConvNeXtBlock Block2, Module<Tensor, Tensor> Resample);

    public ConvNeXtUNetConfig Config { get; }

    public ConvNeXtUNet(ConvNeXtUNetConfig config, Generator? generator = null)
    {
        Config = config.Validate();
        var g = generator;
        int dim = config.Dim, initDim = config.EffectiveInitDim, timeDim = config.TimeEmbeddingDim, mult = config.ConvNeXtMult;
        initConv = RegisterModule("init_conv", new Conv2d(config.Channels, initDim, 7, padding: 3, generator: g));

        var dims = new List<int> { initDim };
        dims.AddRange(config.DimMults.Select(m => dim * m));
        var inOut = dims.Zip(dims.Skip(1)).ToList();

        timeMlp = RegisterModule("time_mlp", new Sequential(
            new SinusoidalPositionEmbedding(dim, config.SinusoidalPosEmbTheta),
            new Linear(dim, timeDim, generator: g),
            new GELU(),
            new Linear(timeDim, timeDim, generator: g)));

        // Registered before the mid blocks, as in the PyTorch module, so state dicts list keys in its order.
        var downList = RegisterModule("downs", new ModuleList<ModuleList>());
        var upList = RegisterModule("ups", new ModuleList<ModuleList>());

        for (int i = 0; i < inOut.Count; i++)
        {
            var (dimIn, dimOut) = inOut[i];
            bool isLast = i == inOut.Count - 1;
            var level = new Level(null,
                new ConvNeXtBlock(dimIn, dimIn, mult, timeDim, generator: g),
                new ConvNeXtBlock(dimIn, dimIn, mult, timeDim, generator: g),
                isLast ? new Conv2d(dimIn, dimOut, 3, padding: 1, generator: g) : new PixelUnshuffleDownsample(dimIn, dimOut, g));
            downList.Add(new ModuleList(level.Block1, level.Block2, level.Resample));
            downs.Add(level);
        }

        int midDim = dims[^1];
        midBlock1 = RegisterModule("mid_block1", new ConvNeXtBlock(midDim, midDim, mult, timeDim, generator: g));
        midBlock2 = RegisterModule("mid_block2", new ConvNeXtBlock(midDim, midDim, mult, timeDim, generator: g));

        for (int i = 0; i < inOut.Count; i++)
        {
            var (dimIn, dimOut) = inOut[inOut.Count - 1 - i];
            bool isLast = i == inOut.Count - 1;
            var level = new Level(
                config.AttentionGates ? new AttentionGate(dimOut, dimIn, g) : null,
                new ConvNeXtBlock(dimOut + dimIn, dimOut, mult, timeDim, generator: g),
                new ConvNeXtBlock(dimOut + dimIn, dimOut, mult, timeDim, generator: g),
                isLast ? new Conv2d(dimOut, dimIn, 3, padding: 1, generator: g) : new NearestUpsample(dimOut, dimIn, g));
            var members = new List<Module>();
            if (level.Gate is not null) members.Add(level.Gate);
            members.AddRange([level.Block1, level.Block2, level.Resample]);
            upList.Add(new ModuleList(members));
            ups.Add(level);
        }

        // The write-up writes dim * 2 here; the input really is init_dim (decoder output) + init_dim (r).
        finalResBlock = RegisterModule("final_res_block", new ConvNeXtBlock(initDim * 2, dim, mult, timeDim, generator: g));
        finalConv = RegisterModule("final_conv", new Conv2d(dim, config.EffectiveOutDim, 1, generator: g));
    }

    /// <summary>
    /// Predicts the noise of <paramref name="sample"/> [B, channels, H, W] (H, W multiples of
    /// <see cref="ConvNeXtUNetConfig.DownsamplingFactor"/>) at <paramref name="timesteps"/> ([B], or one for all).
    /// </summary>
    public Tensor Forward(Tensor sample, Tensor timesteps)
    {
        var shape = sample.Shape;
        if (shape.Length != 4 || shape[1] != Config.Channels)
            throw new ArgumentException($"ConvNeXtUNet expects [B, {Config.Channels}, H, W], got [{string.Join(", ", shape)}]", nameof(sample));
        var factor = Config.DownsamplingFactor;
        if (shape[2] % factor != 0 || shape[3] % factor != 0)
            throw new ArgumentException($"ConvNeXtUNet: height and width ({shape[2]}×{shape[3]}) must be multiples of {factor}", nameof(sample));

        using var scope = DisposeScope.Enter();
        var t = timesteps.NumEl == 1 ? timesteps.Reshape(1).Expand(shape[0]) : timesteps;
        if (t.Dim != 1 || t.Size(0) != shape[0])
            throw new ArgumentException($"ConvNeXtUNet: {t.Size(0)} timesteps for a batch of {shape[0]}", nameof(timesteps));
        var emb = timeMlp.Forward(t.To(sample.Device));

        var x = initConv.Forward(sample);
        var r = x;
        var skips = new Stack<Tensor>();
        foreach (var level in downs)
        {
            x = level.Block1.Forward(x, emb);
            skips.Push(x);
            x = level.Block2.Forward(x, emb);
            skips.Push(x);
            x = level.Resample.Forward(x);
        }

        x = midBlock1.Forward(x, emb);
        x = midBlock2.Forward(x, emb);

        foreach (var level in ups)
        {
            x = level.Block1.Forward(Tensor.Cat([x, Skip(level, skips.Pop(), x)], 1), emb);
            x = level.Block2.Forward(Tensor.Cat([x, Skip(level, skips.Pop(), x)], 1), emb);
            x = level.Resample.Forward(x);
        }

        x = finalResBlock.Forward(Tensor.Cat([x, r], 1), emb);
        return scope.Keep(finalConv.Forward(x));
    }

    private static Tensor Skip(Level level, Tensor skip, Tensor gate) => level.Gate?.Forward(skip, gate) ?? skip;

    // ---- persistence: config.json + diffusion_pytorch_model.safetensors, our own layout ----

    /// <summary>How a ConvNeXtUNet lives in a model folder (diffusers' layout, this project's class).</summary>
    public static PretrainedFormat<ConvNeXtUNet, ConvNeXtUNetConfig> Format { get; } = new()
    {
        ReadConfig = ConvNeXtUNetConfig.Load,
        Create = config => new ConvNeXtUNet(config),
        WriteConfig = (path, model) => model.Config.Save(path),
    };

    /// <summary>Writes config.json and diffusion_pytorch_model[.variant].safetensors into <paramref name="directory"/> (atomically each).</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);

    /// <summary>Builds the model of <paramref name="directory"/>/config.json and loads its weights strictly, in evaluation mode.</summary>
    public static ConvNeXtUNet FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);
}

using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Autoencoder;

/// <summary>
/// diffusers' VAE <c>Encoder</c>: conv_in → down_blocks (each halves the size except the last) →
/// mid_block (resnet, attention, resnet) → GroupNorm → SiLU → conv_out to 2 × latent channels
/// (mean and log-variance, "double_z"). The blocks are the U-Net's, without a timestep embedding.
/// </summary>
public sealed class Encoder : Module<Tensor, Tensor>
{
    /// <summary>GroupNorm epsilon of every VAE block (diffusers passes resnet_eps=1e-6).</summary>
    public const double Eps = 1e-6;

    /// <summary>
    /// The settings diffusers' Encoder and Decoder give every block: temb_channels None, resnet_eps 1e-6,
    /// resnet_time_scale_shift "default", output scale 1.
    /// </summary>
    internal static ResnetSettings Resnet(AutoencoderKLConfig config) => new(null, Eps, config.ActFn, config.NormNumGroups);

    /// <summary>
    /// diffusers' Encoder/Decoder mid block: attention_head_dim = the channels (one head), the resnets' groups.
    /// Its attention runs as diffusers' AttnProcessor2_0 (scaled_dot_product_attention, diffusers' default on
    /// PyTorch 2), i.e. the fused CPU kernel in inference; the VAE goldens were made with AttnProcessor (baddbmm, PyTorch
    /// 1.13) and hold with their tolerances (the two differ in the last bits).
    /// </summary>
    internal static UNetMidBlock2D CreateMidBlock(long channels, AutoencoderKLConfig config, Generator? generator)
    {
        var block = new UNetMidBlock2D(channels, Resnet(config), addAttention: config.MidBlockAddAttention, attentionHeadDim: (int)channels,
            generator: generator);
        return block;
    }

    public Conv2d ConvIn { get; }
    public ModuleList<DownEncoderBlock2D> DownBlocks { get; }
    public UNetMidBlock2D MidBlock { get; }
    public GroupNorm ConvNormOut { get; }
    public SiLU ConvAct { get; }
    public Conv2d ConvOut { get; }

    public Encoder(AutoencoderKLConfig config, Generator? generator = null)
    {
        var channels = config.BlockOutChannels;
        var groups = config.NormNumGroups;
        ConvIn = RegisterModule("conv_in", new Conv2d(config.InChannels, channels[0], 3, padding: 1, generator: generator));
        DownBlocks = RegisterModule("down_blocks", new ModuleList<DownEncoderBlock2D>());
        for (int i = 0; i < channels.Length; i++)
        {
            var field = $"down_block_types[{i}]";
            var block = UNetBlocks.GetDownBlock(config.DownBlockTypes[i], field, config.LayersPerBlock, channels[Math.Max(i - 1, 0)], channels[i],
                Resnet(config), addDownsample: i < channels.Length - 1, downsamplePadding: 0, generator: generator);
            DownBlocks.Add(block as DownEncoderBlock2D ?? throw ConfigErrors.Unsupported(field, config.DownBlockTypes[i], "\"DownEncoderBlock2D\""));
        }
        MidBlock = RegisterModule("mid_block", CreateMidBlock(channels[^1], config, generator));
        ConvNormOut = RegisterModule("conv_norm_out", new GroupNorm(groups, channels[^1], Eps));
        ConvAct = RegisterModule("conv_act", new SiLU());
        ConvOut = RegisterModule("conv_out", new Conv2d(channels[^1], 2 * config.LatentChannels, 3, padding: 1, generator: generator));
    }

    public override Tensor Forward(Tensor sample)
    {
        using var scope = DisposeScope.Enter();
        var hidden = ConvIn.Forward(sample);
        foreach (var block in DownBlocks) hidden = hidden.Then(block.Forward);
        return scope.Keep(hidden
            .Then(h => MidBlock.Forward(h, null))
            .Then(h => Activations.GroupNormThen(ConvNormOut, ConvAct, h))
            .Then(ConvOut.Forward));
    }
}

/// <summary>
/// diffusers' VAE <c>Decoder</c>: conv_in → mid_block → up_blocks (each doubles the size except the
/// last; layers_per_block + 1 resnets each) → GroupNorm → SiLU → conv_out to image channels.
/// </summary>
public sealed class Decoder : Module<Tensor, Tensor>
{
    public Conv2d ConvIn { get; }
    public ModuleList<UpDecoderBlock2D> UpBlocks { get; }
    public UNetMidBlock2D MidBlock { get; }
    public GroupNorm ConvNormOut { get; }
    public SiLU ConvAct { get; }
    public Conv2d ConvOut { get; }

    public Decoder(AutoencoderKLConfig config, Generator? generator = null)
    {
        var reversed = config.BlockOutChannels.Reverse().ToArray();
        var groups = config.NormNumGroups;
        const double eps = Encoder.Eps;
        ConvIn = RegisterModule("conv_in", new Conv2d(config.LatentChannels, reversed[0], 3, padding: 1, generator: generator));
        // diffusers assigns the (empty) up_blocks list before mid_block, so it comes first in the state dict.
        UpBlocks = RegisterModule("up_blocks", new ModuleList<UpDecoderBlock2D>());
        MidBlock = RegisterModule("mid_block", Encoder.CreateMidBlock(reversed[0], config, generator));
        for (int i = 0; i < reversed.Length; i++)
        {
            // diffusers passes prev_output_channel=None: an UpDecoderBlock2D has no skip connections.
            var field = $"up_block_types[{i}]";
            var block = UNetBlocks.GetUpBlock(config.UpBlockTypes[i], field, config.LayersPerBlock + 1, reversed[Math.Max(i - 1, 0)], reversed[i],
                prevOutputChannel: null, Encoder.Resnet(config), addUpsample: i < reversed.Length - 1, generator: generator);
            UpBlocks.Add(block as UpDecoderBlock2D ?? throw ConfigErrors.Unsupported(field, config.UpBlockTypes[i], "\"UpDecoderBlock2D\""));
        }
        ConvNormOut = RegisterModule("conv_norm_out", new GroupNorm(groups, reversed[^1], eps));
        ConvAct = RegisterModule("conv_act", new SiLU());
        ConvOut = RegisterModule("conv_out", new Conv2d(reversed[^1], config.OutChannels, 3, padding: 1, generator: generator));
    }

    public override Tensor Forward(Tensor latents)
    {
        using var scope = DisposeScope.Enter();
        var hidden = ConvIn.Forward(latents).Then(h => MidBlock.Forward(h, null));
        foreach (var block in UpBlocks) hidden = hidden.Then(block.Forward);
        return scope.Keep(hidden
            .Then(h => Activations.GroupNormThen(ConvNormOut, ConvAct, h))
            .Then(ConvOut.Forward));
    }
}

using System.Text.Json.Serialization;
using LatentDiffusion.Blocks;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.Autoencoder;

/// <summary>
/// diffusers' <c>AutoencoderTiny</c> config.json (TAESD). Defaults are diffusers 0.30.3's, which are
/// TAESD for SD1/SD2 latents (4 channels); TAESDXL is the same, TAESD3/TAEF1 have 16 latent channels
/// and TAEF2 32 with <see cref="UseMidblockGn"/>.
/// </summary>
public sealed record AutoencoderTinyConfig : IModelConfig<AutoencoderTinyConfig>
{
    public const string ClassName = "AutoencoderTiny";

    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    [JsonPropertyName("encoder_block_out_channels")] public int[] EncoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    [JsonPropertyName("decoder_block_out_channels")] public int[] DecoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "relu";
    [JsonPropertyName("upsample_fn")] public string UpsampleFn { get; init; } = "nearest";
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; init; } = 4;
    [JsonPropertyName("upsampling_scaling_factor")] public int UpsamplingScalingFactor { get; init; } = 2;

    /// <summary>Blocks after each encoder conv: the first conv keeps the size, later ones halve it.</summary>
    [JsonPropertyName("num_encoder_blocks")] public int[] NumEncoderBlocks { get; init; } = [1, 3, 3, 3];

    /// <summary>Blocks of each decoder stage; every stage but the last ends with an upsample and a conv.</summary>
    [JsonPropertyName("num_decoder_blocks")] public int[] NumDecoderBlocks { get; init; } = [3, 3, 3, 1];

    /// <summary>Raw latents map to [0, 1] as z / (2·magnitude) + shift, for storing them as 8-bit images.</summary>
    [JsonPropertyName("latent_magnitude")] public double LatentMagnitude { get; init; } = 3;
    [JsonPropertyName("latent_shift")] public double LatentShift { get; init; } = 0.5;
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; init; }
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; init; } = 1.0;
    [JsonPropertyName("shift_factor")] public double ShiftFactor { get; init; }

    /// <summary>diffusers also records decoder_block_out_channels under this name; informational.</summary>
    [JsonPropertyName("block_out_channels")] public int[]? BlockOutChannels { get; init; }

    /// <summary>
    /// Not a diffusers option: TAEF2's "midblock GN" (taesd.py's use_midblock_gn). Each block of the
    /// encoder's last stage and the decoder's first stage first adds a global pooling branch,
    /// x += conv1×1(ReLU(GroupNorm₄(conv1×1(x)))) with 4× the channels, under the keys pool.0/1/3.
    /// </summary>
    [JsonPropertyName("use_midblock_gn")] public bool UseMidblockGn { get; init; }

    /// <summary>TAESD for SD1.x/SD2.x/SDXL latents.</summary>
    public static AutoencoderTinyConfig Taesd => new();

    /// <summary>TAESD3 / TAEF1: 16 latent channels.</summary>
    public static AutoencoderTinyConfig Taef1 => new() { LatentChannels = 16 };

    /// <summary>TAEF2 (FLUX.2 latents): 32 latent channels and midblock GroupNorm pooling.</summary>
    public static AutoencoderTinyConfig Taef2 => new() { LatentChannels = 32, UseMidblockGn = true };

    static string? IModelConfig<AutoencoderTinyConfig>.ConfigClassName => ClassName;

    /// <summary>Reads a config.json; unknown fields and unsupported values are errors naming the field.</summary>
    public static AutoencoderTinyConfig Load(string path) => ModelConfig.Load<AutoencoderTinyConfig>(path);

    public void Validate(string source = "AutoencoderTiny config")
    {
        var check = new ConfigCheck(source);
        var encoder = check.PositiveList(EncoderBlockOutChannels, "encoder_block_out_channels");
        check.List(NumEncoderBlocks, "num_encoder_blocks", encoder.Length, "encoder_block_out_channels");
        // diffusers' EncoderTiny feeds stage i's stride-2 conv with block_out_channels[i] channels.
        check.That(encoder.Distinct().Count() == 1, "encoder_block_out_channels", "must be equal at every stage (as diffusers' EncoderTiny assumes)");
        var decoder = check.PositiveList(DecoderBlockOutChannels, "decoder_block_out_channels");
        check.List(NumDecoderBlocks, "num_decoder_blocks", decoder.Length, "decoder_block_out_channels");
        check.That(decoder.Distinct().Count() == 1, "decoder_block_out_channels", "must be equal at every stage (as diffusers' DecoderTiny assumes)");
        for (int i = 0; i < NumEncoderBlocks.Length; i++) check.NotNegative(NumEncoderBlocks[i], $"num_encoder_blocks[{i}]");
        for (int i = 0; i < NumDecoderBlocks.Length; i++) check.NotNegative(NumDecoderBlocks[i], $"num_decoder_blocks[{i}]");
        // Informational (a copy of decoder_block_out_channels), but still channel counts.
        if (BlockOutChannels is not null)
            for (int i = 0; i < BlockOutChannels.Length; i++) check.Positive(BlockOutChannels[i], $"block_out_channels[{i}]");
        check.That(Activations.IsSupported(ActFn), "act_fn",
            $"is \"{ActFn}\", which is not supported (use one of {string.Join(", ", Activations.Names)})");
        check.OneOf(UpsampleFn, "upsample_fn", "nearest", "bilinear", "bicubic");
        check.Positive(UpsamplingScalingFactor, "upsampling_scaling_factor");
        check.Positive(LatentChannels, "latent_channels");
        check.Positive(InChannels, "in_channels");
        check.Positive(OutChannels, "out_channels");
        check.PositiveFinite(LatentMagnitude, "latent_magnitude");
        check.Finite(LatentShift, "latent_shift");
        check.That(ScalingFactor != 0 && double.IsFinite(ScalingFactor), "scaling_factor", $"must be a finite non-zero number (got {ScalingFactor})");
        check.Finite(ShiftFactor, "shift_factor");
    }
}

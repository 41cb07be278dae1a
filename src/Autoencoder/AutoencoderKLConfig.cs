using System.Text.Json.Serialization;
using LatentDiffusion.Blocks;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.Autoencoder;

/// <summary>
/// diffusers' <c>AutoencoderKL</c> config.json. Names and defaults are diffusers 0.30.3's; the SD1.x
/// VAE is <c>block_out_channels [128, 256, 512, 512]</c>, <c>layers_per_block 2</c>.
/// </summary>
public sealed record AutoencoderKLConfig : IModelConfig<AutoencoderKLConfig>
{
    public const string ClassName = "AutoencoderKL";
    public const string DownBlockType = "DownEncoderBlock2D";
    public const string UpBlockType = "UpDecoderBlock2D";

    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = [DownBlockType];
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = [UpBlockType];
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [64];
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 1;
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; init; } = 4;
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;

    /// <summary>Image size the model was trained at; also the tile size of tiled encoding/decoding.</summary>
    [JsonPropertyName("sample_size")] public int SampleSize { get; init; } = 32;

    /// <summary>Latents are multiplied by this before diffusion and divided by it before decoding (LDM §4.3.2).</summary>
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; init; } = 0.18215;

    /// <summary>Subtracted before scaling (SD3/FLUX VAEs); null for SD1/SD2.</summary>
    [JsonPropertyName("shift_factor")] public double? ShiftFactor { get; init; }

    [JsonPropertyName("latents_mean")] public double[]? LatentsMean { get; init; }
    [JsonPropertyName("latents_std")] public double[]? LatentsStd { get; init; }

    /// <summary>Pipelines run this VAE in float32 even when the rest of the model is half precision.</summary>
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; init; } = true;

    [JsonPropertyName("use_quant_conv")] public bool UseQuantConv { get; init; } = true;
    [JsonPropertyName("use_post_quant_conv")] public bool UsePostQuantConv { get; init; } = true;
    [JsonPropertyName("mid_block_add_attention")] public bool MidBlockAddAttention { get; init; } = true;

    /// <summary>Spatial factor between image and latent: 2^(levels − 1), 8 for SD.</summary>
    [JsonIgnore] public int DownscaleFactor => 1 << (BlockOutChannels.Length - 1);

    static string? IModelConfig<AutoencoderKLConfig>.ConfigClassName => ClassName;

    /// <summary>Reads a config.json; unknown fields and unsupported values are errors naming the field.</summary>
    public static AutoencoderKLConfig Load(string path) => ModelConfig.Load<AutoencoderKLConfig>(path);

    /// <summary>Throws a <see cref="ConfigException"/> naming the first field this implementation cannot build.</summary>
    public void Validate(string source = "AutoencoderKL config")
    {
        void Fail(string field, string why) => throw new ConfigException($"{source}: '{field}' {why}");

        if (BlockOutChannels is not { Length: > 0 }) Fail("block_out_channels", "must list at least one level");
        if (BlockOutChannels.Any(c => c <= 0)) Fail("block_out_channels", "must be positive");
        if (DownBlockTypes is null || DownBlockTypes.Length != BlockOutChannels.Length)
            Fail("down_block_types", $"must list one block per entry of block_out_channels ({BlockOutChannels.Length})");
        foreach (var t in DownBlockTypes!)
            if (t != DownBlockType) Fail("down_block_types", $"contains \"{t}\"; only {DownBlockType} is supported");
        if (UpBlockTypes is null || UpBlockTypes.Length != BlockOutChannels.Length)
            Fail("up_block_types", $"must list one block per entry of block_out_channels ({BlockOutChannels.Length})");
        foreach (var t in UpBlockTypes!)
            if (t != UpBlockType) Fail("up_block_types", $"contains \"{t}\"; only {UpBlockType} is supported");
        if (!Activations.IsSupported(ActFn))
            Fail("act_fn", $"is \"{ActFn}\", which is not supported (use one of {string.Join(", ", Activations.Names)})");
        if (LayersPerBlock < 1) Fail("layers_per_block", "must be at least 1");
        if (InChannels < 1) Fail("in_channels", "must be positive");
        if (OutChannels < 1) Fail("out_channels", "must be positive");
        if (LatentChannels < 1) Fail("latent_channels", "must be positive");
        if (NormNumGroups < 1 || BlockOutChannels.Any(c => c % NormNumGroups != 0))
            Fail("norm_num_groups", $"({NormNumGroups}) must divide every entry of block_out_channels");
        if (SampleSize < 1) Fail("sample_size", "must be positive");
        if (ScalingFactor == 0 || !double.IsFinite(ScalingFactor)) Fail("scaling_factor", "must be a finite non-zero number");
        if (LatentsMean is not null && LatentsMean.Length != LatentChannels) Fail("latents_mean", $"must have latent_channels ({LatentChannels}) entries");
        if (LatentsStd is not null && LatentsStd.Length != LatentChannels) Fail("latents_std", $"must have latent_channels ({LatentChannels}) entries");
    }
}

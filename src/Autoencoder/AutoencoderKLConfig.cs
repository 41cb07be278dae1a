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
        var check = new ConfigCheck(source);
        var channels = check.PositiveList(BlockOutChannels, "block_out_channels");
        // The spatial factor 2^(levels − 1) must stay an int (and a sensible image size).
        check.That(channels.Length <= 16, "block_out_channels", $"has {channels.Length} levels; at most 16 are supported");
        var down = check.NameList(DownBlockTypes, "down_block_types", channels.Length, "block_out_channels");
        for (int i = 0; i < down.Length; i++) check.OneOf(down[i], $"down_block_types[{i}]", DownBlockType);
        var up = check.NameList(UpBlockTypes, "up_block_types", channels.Length, "block_out_channels");
        for (int i = 0; i < up.Length; i++) check.OneOf(up[i], $"up_block_types[{i}]", UpBlockType);
        check.That(Activations.IsSupported(ActFn), "act_fn",
            $"is \"{ActFn}\", which is not supported (use one of {string.Join(", ", Activations.Names)})");
        check.Positive(LayersPerBlock, "layers_per_block");
        check.Positive(InChannels, "in_channels");
        check.Positive(OutChannels, "out_channels");
        check.Positive(LatentChannels, "latent_channels");
        check.Positive(NormNumGroups, "norm_num_groups");
        for (int i = 0; i < channels.Length; i++) check.Divisible(channels[i], $"block_out_channels[{i}]", NormNumGroups, "norm_num_groups");
        check.Positive(SampleSize, "sample_size");
        check.That(ScalingFactor != 0 && double.IsFinite(ScalingFactor), "scaling_factor", $"must be a finite non-zero number (got {ScalingFactor})");
        if (ShiftFactor is { } shift) check.Finite(shift, "shift_factor");
        Latents(check, LatentsMean, "latents_mean", finiteOnly: true);
        Latents(check, LatentsStd, "latents_std", finiteOnly: false);
    }

    // latents_mean/latents_std: one finite value per latent channel; a standard deviation must be positive.
    private void Latents(ConfigCheck check, double[]? values, string field, bool finiteOnly)
    {
        if (values is null) return;
        check.That(values.Length == LatentChannels, field, $"must have latent_channels ({LatentChannels}) entries (got {values.Length})");
        for (int i = 0; i < values.Length; i++)
        {
            if (finiteOnly) check.Finite(values[i], $"{field}[{i}]");
            else check.PositiveFinite(values[i], $"{field}[{i}]");
        }
    }
}

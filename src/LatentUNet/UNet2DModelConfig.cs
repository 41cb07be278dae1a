using System.Text.Json.Serialization;
using LatentDiffusion.Blocks;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// config.json of diffusers' UNet2DModel (the unconditional pixel-space U-Net of DDPM), with
/// diffusers' names and defaults. Note <c>attention_head_dim</c> is here the number of channels per
/// head, null meaning one head spanning all channels.
/// </summary>
public sealed record UNet2DModelConfig : IModelConfig<UNet2DModelConfig>
{
    public const string ClassName = "UNet2DModel";

    [JsonPropertyName("sample_size")] public OneOrMany<int>? SampleSize { get; init; }
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; init; }
    /// <summary>"positional" (sinusoidal), "fourier" (Gaussian Fourier features of log σ) or "learned" (an embedding table).</summary>
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; init; } = "positional";
    [JsonPropertyName("freq_shift")] public double FreqShift { get; init; }
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"];
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"];
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [224, 448, 672, 896];
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 2;
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;
    [JsonPropertyName("downsample_type")] public string DownsampleType { get; init; } = "conv";
    [JsonPropertyName("upsample_type")] public string UpsampleType { get; init; } = "conv";
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    [JsonPropertyName("attention_head_dim")] public int? AttentionHeadDim { get; init; } = 8;
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;
    [JsonPropertyName("attn_norm_num_groups")] public int? AttnNormNumGroups { get; init; }
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";
    [JsonPropertyName("add_attention")] public bool AddAttention { get; init; } = true;
    /// <summary>null (a class table when num_class_embeds is set), "timestep" or "identity".</summary>
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }
    [JsonPropertyName("num_train_timesteps")] public int? NumTrainTimesteps { get; init; }

    /// <summary>Checks what diffusers checks, and that every option is one this implementation supports.</summary>
    static string? IModelConfig<UNet2DModelConfig>.ConfigClassName => ClassName;

    /// <summary>Reads a config.json; unknown fields and unsupported values are errors naming the file and the field.</summary>
    public static UNet2DModelConfig Load(string path) => ModelConfig.Load<UNet2DModelConfig>(path);

    /// <summary>Largest <c>num_train_timesteps</c> of a learned time embedding (a table of that many rows).</summary>
    public const int MaxTrainTimesteps = 100_000;

    /// <summary>Throws a <see cref="ConfigException"/> naming <paramref name="source"/> and the first field this implementation cannot build.</summary>
    public void Validate(string source = "UNet2DModel config") => ConfigCheck.Run(source, Validate);

    private void Validate(ConfigCheck check)
    {
        int n = check.NameList(DownBlockTypes, "down_block_types").Length;
        check.NameList(UpBlockTypes, "up_block_types", n, "down_block_types");
        var channels = check.PositiveList(BlockOutChannels, "block_out_channels", n, "down_block_types");
        if (SampleSize is not null) check.PositivePerBlock(SampleSize, SampleSize.List?.Count ?? 1, "sample_size");
        check.Positive(InChannels, "in_channels");
        check.Positive(OutChannels, "out_channels");
        check.Positive(LayersPerBlock, "layers_per_block");
        check.Finite(FreqShift, "freq_shift");
        // The mid block divides by it ((x + h) / s): models use 1 or √2; near 0 it overflows float32 to ∞.
        check.InRange(MidBlockScaleFactor, "mid_block_scale_factor", 1e-3, 1e3);
        check.NotNegative(DownsamplePadding, "downsample_padding");
        check.InRange(Dropout, "dropout", 0, 1);
        check.Positive(NormNumGroups, "norm_num_groups");
        for (int i = 0; i < n; i++) check.Divisible(channels[i], $"block_out_channels[{i}]", NormNumGroups, "norm_num_groups");
        check.PositiveFinite(NormEps, "norm_eps");
        // Attention splits a block's channels into heads of attention_head_dim channels (null: one head over all of them).
        check.Positive(AttentionHeadDim, "attention_head_dim");
        check.Positive(AttnNormNumGroups, "attn_norm_num_groups");
        if (AttentionHeadDim is { } headDim)
            for (int i = 0; i < n; i++)
            {
                bool attends = UNetBlocks.Strip(DownBlockTypes[i]) == "AttnDownBlock2D" || UNetBlocks.Strip(UpBlockTypes[n - 1 - i]) == "AttnUpBlock2D"
                    || (AddAttention && i == n - 1);
                if (attends) check.Divisible(channels[i], $"block_out_channels[{i}]", headDim, "attention_head_dim");
            }
        if (AddAttention && AttnNormNumGroups is { } attnGroups)
            check.Divisible(channels[^1], $"block_out_channels[{n - 1}]", attnGroups, "attn_norm_num_groups");
        check.Positive(NumClassEmbeds, "num_class_embeds");
        check.Positive(NumTrainTimesteps, "num_train_timesteps");
        check.That(NumTrainTimesteps is null or <= MaxTrainTimesteps, "num_train_timesteps", $"must be at most {MaxTrainTimesteps} (got {NumTrainTimesteps})");
        if (TimeEmbeddingType is not ("positional" or "fourier" or "learned"))
            throw ConfigErrors.Unsupported("time_embedding_type", TimeEmbeddingType, "\"positional\", \"fourier\" or \"learned\"");
        if (TimeEmbeddingType == "learned" && NumTrainTimesteps is null)
            throw ConfigErrors.Invalid("num_train_timesteps", "must be set for time_embedding_type \"learned\"");
        // The sinusoidal embedding divides by (block_out_channels[0] / 2 − freq_shift).
        if (TimeEmbeddingType == "positional")
            check.That(channels[0] / 2 - FreqShift != 0, "freq_shift", $"({FreqShift}) must differ from block_out_channels[0] / 2");
        if (ResnetTimeScaleShift is not ("default" or "scale_shift"))
            throw ConfigErrors.Unsupported("resnet_time_scale_shift", ResnetTimeScaleShift, "\"default\" or \"scale_shift\"");
        if (DownsampleType is not ("conv" or "resnet"))
            throw ConfigErrors.Unsupported("downsample_type", DownsampleType, "\"conv\" or \"resnet\"");
        if (UpsampleType is not ("conv" or "resnet"))
            throw ConfigErrors.Unsupported("upsample_type", UpsampleType, "\"conv\" or \"resnet\"");
        if (ClassEmbedType is not (null or "timestep" or "identity"))
            throw ConfigErrors.Unsupported("class_embed_type", ClassEmbedType, "null, \"timestep\" or \"identity\"");
        UNetBlocks.Check(DownBlockTypes, "down_block_types", "DownBlock2D", "AttnDownBlock2D");
        UNetBlocks.Check(UpBlockTypes, "up_block_types", "UpBlock2D", "AttnUpBlock2D");
        Activations.Create(ActFn).Dispose();
    }
}

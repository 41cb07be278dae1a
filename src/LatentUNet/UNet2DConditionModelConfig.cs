using System.Text.Json.Serialization;
using LatentDiffusion.Blocks;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// config.json of diffusers' UNet2DConditionModel (the Stable Diffusion U-Net), every field with
/// diffusers' name and default. Per-block values may be one value or a list (<see cref="OneOrMany{T}"/>).
/// Beware the historical naming: <c>attention_head_dim</c> is the NUMBER OF HEADS of the cross-attention
/// blocks when <c>num_attention_heads</c> is null (SD1.x: 8; SD2.x: [5, 10, 20, 20]).
/// </summary>
public sealed record UNet2DConditionModelConfig : IModelConfig<UNet2DConditionModelConfig>
{
    public const string ClassName = "UNet2DConditionModel";

    [JsonPropertyName("sample_size")] public OneOrMany<int>? SampleSize { get; init; }
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 4;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 4;
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; init; }
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;
    [JsonPropertyName("freq_shift")] public double FreqShift { get; init; }
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    [JsonPropertyName("mid_block_type")] public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];
    [JsonPropertyName("only_cross_attention")] public OneOrMany<bool> OnlyCrossAttention { get; init; } = false;
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    [JsonPropertyName("layers_per_block")] public OneOrMany<int> LayersPerBlock { get; init; } = 2;
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; init; } = 32;
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;
    [JsonPropertyName("cross_attention_dim")] public OneOrMany<int> CrossAttentionDim { get; init; } = 1280;
    [JsonPropertyName("transformer_layers_per_block")] public OneOrMany<int> TransformerLayersPerBlock { get; init; } = 1;
    [JsonPropertyName("reverse_transformer_layers_per_block")] public int[][]? ReverseTransformerLayersPerBlock { get; init; }
    [JsonPropertyName("encoder_hid_dim")] public int? EncoderHidDim { get; init; }
    [JsonPropertyName("encoder_hid_dim_type")] public string? EncoderHidDimType { get; init; }
    [JsonPropertyName("attention_head_dim")] public OneOrMany<int> AttentionHeadDim { get; init; } = 8;
    [JsonPropertyName("num_attention_heads")] public OneOrMany<int>? NumAttentionHeads { get; init; }
    [JsonPropertyName("dual_cross_attention")] public bool DualCrossAttention { get; init; }
    [JsonPropertyName("use_linear_projection")] public bool UseLinearProjection { get; init; }
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }
    [JsonPropertyName("addition_embed_type")] public string? AdditionEmbedType { get; init; }
    [JsonPropertyName("addition_time_embed_dim")] public int? AdditionTimeEmbedDim { get; init; }
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }
    [JsonPropertyName("upcast_attention")] public bool UpcastAttention { get; init; }
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";
    [JsonPropertyName("resnet_skip_time_act")] public bool ResnetSkipTimeAct { get; init; }
    [JsonPropertyName("resnet_out_scale_factor")] public double ResnetOutScaleFactor { get; init; } = 1.0;
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; init; } = "positional";
    [JsonPropertyName("time_embedding_dim")] public int? TimeEmbeddingDim { get; init; }
    [JsonPropertyName("time_embedding_act_fn")] public string? TimeEmbeddingActFn { get; init; }
    [JsonPropertyName("timestep_post_act")] public string? TimestepPostAct { get; init; }
    /// <summary>Width of an extra timestep condition (LCM-distilled models embed the guidance scale this way).</summary>
    [JsonPropertyName("time_cond_proj_dim")] public int? TimeCondProjDim { get; init; }
    [JsonPropertyName("conv_in_kernel")] public int ConvInKernel { get; init; } = 3;
    [JsonPropertyName("conv_out_kernel")] public int ConvOutKernel { get; init; } = 3;
    [JsonPropertyName("projection_class_embeddings_input_dim")] public int? ProjectionClassEmbeddingsInputDim { get; init; }
    [JsonPropertyName("attention_type")] public string AttentionType { get; init; } = "default";
    [JsonPropertyName("class_embeddings_concat")] public bool ClassEmbeddingsConcat { get; init; }
    [JsonPropertyName("mid_block_only_cross_attention")] public bool? MidBlockOnlyCrossAttention { get; init; }
    [JsonPropertyName("cross_attention_norm")] public string? CrossAttentionNorm { get; init; }
    [JsonPropertyName("addition_embed_type_num_heads")] public int AdditionEmbedTypeNumHeads { get; init; } = 64;

    /// <summary>Checks what diffusers checks, and that every option is one this implementation supports.</summary>
    static string? IModelConfig<UNet2DConditionModelConfig>.ConfigClassName => ClassName;

    /// <summary>Reads a config.json; unknown fields and unsupported values are errors naming the file and the field.</summary>
    public static UNet2DConditionModelConfig Load(string path) => ModelConfig.Load<UNet2DConditionModelConfig>(path);

    /// <summary>Throws a <see cref="ConfigException"/> naming <paramref name="source"/> and the first field this implementation cannot build.</summary>
    public void Validate(string source = "UNet2DConditionModel config") => ConfigCheck.Run(source, Validate);

    private void Validate(ConfigCheck check)
    {
        int n = check.NameList(DownBlockTypes, "down_block_types").Length;
        check.NameList(UpBlockTypes, "up_block_types", n, "down_block_types");
        var channels = check.PositiveList(BlockOutChannels, "block_out_channels", n, "down_block_types");
        // diffusers itself refuses num_attention_heads (issue 2011): attention_head_dim carries the head count.
        if (NumAttentionHeads is not null)
            throw ConfigErrors.Unsupported("num_attention_heads", NumAttentionHeads, "null; diffusers reads the head count from attention_head_dim");
        OnlyCrossAttention.PerBlock(n, "only_cross_attention");
        check.PositivePerBlock(LayersPerBlock, n, "layers_per_block");
        check.PositivePerBlock(CrossAttentionDim, n, "cross_attention_dim");
        check.PositivePerBlock(TransformerLayersPerBlock, n, "transformer_layers_per_block");
        var heads = check.PositivePerBlock(AttentionHeadDim, n, "attention_head_dim");
        // A cross-attention block splits its channels into attention_head_dim heads, an AttnDownBlock2D into heads of that
        // many channels: either way the value divides the block's channels. An up block reads attention_head_dim[i]
        // unreversed (as diffusers does) while its channels are the mirrored block's.
        for (int i = 0; i < n; i++)
        {
            check.Divisible(channels[i], $"block_out_channels[{i}]", heads[i], $"attention_head_dim[{i}]");
            if (UNetBlocks.Strip(UpBlockTypes[i]) == "AttnUpBlock2D")
                check.Divisible(channels[n - 1 - i], $"block_out_channels[{n - 1 - i}]", heads[i], $"attention_head_dim[{i}]");
        }
        if (SampleSize is not null) check.PositivePerBlock(SampleSize, SampleSize.List?.Count ?? 1, "sample_size");
        check.Positive(InChannels, "in_channels");
        check.Positive(OutChannels, "out_channels");
        check.Finite(FreqShift, "freq_shift");
        check.NotNegative(DownsamplePadding, "downsample_padding");
        // The mid block divides by it ((x + h) / s): models use 1 or √2; near 0 it overflows float32 to ∞.
        check.InRange(MidBlockScaleFactor, "mid_block_scale_factor", 1e-3, 1e3);
        check.InRange(Dropout, "dropout", 0, 1);
        if (NormNumGroups is not { } groups) throw ConfigErrors.Unsupported("norm_num_groups", null, "a group count");
        check.Positive(groups, "norm_num_groups");
        for (int i = 0; i < n; i++) check.Divisible(channels[i], $"block_out_channels[{i}]", groups, "norm_num_groups");
        check.PositiveFinite(NormEps, "norm_eps");
        if (ReverseTransformerLayersPerBlock is not null)
            throw ConfigErrors.Unsupported("reverse_transformer_layers_per_block", "a list", "null");
        if (DualCrossAttention) throw ConfigErrors.Unsupported("dual_cross_attention", true, "false");
        if (AdditionEmbedType is not (null or "text_time")) throw ConfigErrors.Unsupported("addition_embed_type", AdditionEmbedType, "null or \"text_time\"");
        if (AdditionEmbedType == "text_time")
        {
            // SDXL: add_time_proj embeds each time id in addition_time_embed_dim channels; add_embedding takes the pooled
            // text embedding and them, projection_class_embeddings_input_dim wide.
            if (AdditionTimeEmbedDim is null) throw check.Fail("addition_time_embed_dim", "must be set for addition_embed_type \"text_time\"");
            if (ProjectionClassEmbeddingsInputDim is null) throw check.Fail("projection_class_embeddings_input_dim", "must be set for addition_embed_type \"text_time\"");
        }
        if (AttentionType != "default") throw ConfigErrors.Unsupported("attention_type", AttentionType, "\"default\"");
        // Options diffusers has that this implementation does not apply: only their defaults build the same model.
        if (CrossAttentionNorm is not null) throw ConfigErrors.Unsupported("cross_attention_norm", CrossAttentionNorm, "null");
        if (ResnetSkipTimeAct) throw ConfigErrors.Unsupported("resnet_skip_time_act", true, "false");
        if (ResnetOutScaleFactor != 1.0) throw ConfigErrors.Unsupported("resnet_out_scale_factor", ResnetOutScaleFactor, "1.0");
        if (EncoderHidDimType is not (null or "text_proj"))
            throw ConfigErrors.Unsupported("encoder_hid_dim_type", EncoderHidDimType, "null or \"text_proj\"");
        if (EncoderHidDimType is not null && EncoderHidDim is null)
            throw ConfigErrors.Invalid("encoder_hid_dim", $"must be set when encoder_hid_dim_type is \"{EncoderHidDimType}\"");
        check.Positive(EncoderHidDim, "encoder_hid_dim");
        if (EncoderHidDim is not null && CrossAttentionDim.IsList)
            throw ConfigErrors.Unsupported("cross_attention_dim", CrossAttentionDim, "a single value with encoder_hid_dim");
        check.Positive(AdditionTimeEmbedDim, "addition_time_embed_dim");
        check.Positive(NumClassEmbeds, "num_class_embeds");
        check.OneOf(ClassEmbedType ?? "null", "class_embed_type", "null", "timestep", "identity", "projection", "simple_projection");
        if (ClassEmbedType is "projection" or "simple_projection" && ProjectionClassEmbeddingsInputDim is null)
            throw check.Fail("projection_class_embeddings_input_dim", $"must be set for class_embed_type \"{ClassEmbedType}\"");
        check.Positive(TimeEmbeddingDim, "time_embedding_dim");
        check.Positive(TimeCondProjDim, "time_cond_proj_dim");
        check.Positive(ProjectionClassEmbeddingsInputDim, "projection_class_embeddings_input_dim");
        check.Positive(AdditionEmbedTypeNumHeads, "addition_embed_type_num_heads");
        if (TimeEmbeddingType is not ("positional" or "fourier"))
            throw ConfigErrors.Unsupported("time_embedding_type", TimeEmbeddingType, "\"positional\" or \"fourier\"");
        // The sinusoidal embedding divides by (block_out_channels[0] / 2 − freq_shift).
        if (TimeEmbeddingType == "positional")
            check.That(channels[0] / 2 - FreqShift != 0, "freq_shift", $"({FreqShift}) must differ from block_out_channels[0] / 2");
        if (ResnetTimeScaleShift is not ("default" or "scale_shift"))
            throw ConfigErrors.Unsupported("resnet_time_scale_shift", ResnetTimeScaleShift, "\"default\" or \"scale_shift\"");
        if (MidBlockType is not (null or "UNetMidBlock2DCrossAttn" or "UNetMidBlock2D"))
            throw ConfigErrors.Unsupported("mid_block_type", MidBlockType, "\"UNetMidBlock2DCrossAttn\", \"UNetMidBlock2D\" or null");
        // The block types whose forward pass takes the timestep embedding and text states (not the VAE's blocks).
        UNetBlocks.Check(DownBlockTypes, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D");
        UNetBlocks.Check(UpBlockTypes, "up_block_types", "CrossAttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D");
        check.That(ConvInKernel > 0 && ConvInKernel % 2 == 1, "conv_in_kernel", $"must be a positive odd number (got {ConvInKernel})");
        check.That(ConvOutKernel > 0 && ConvOutKernel % 2 == 1, "conv_out_kernel", $"must be a positive odd number (got {ConvOutKernel})");
        Activations.Create(ActFn).Dispose();
        if (TimeEmbeddingActFn is not null) Activations.Create(TimeEmbeddingActFn, "time_embedding_act_fn").Dispose();
        if (TimestepPostAct is not null) Activations.Create(TimestepPostAct, "timestep_post_act").Dispose();
    }
}

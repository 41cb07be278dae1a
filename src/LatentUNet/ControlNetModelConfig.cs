using System.Text.Json.Serialization;
using LatentDiffusion.Blocks;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// config.json of diffusers' ControlNetModel, every field with diffusers' name and default. A ControlNet is a trainable
/// copy of a U-Net's encoder (down blocks and mid block, <see cref="UNet2DConditionModelConfig"/>'s fields of the same
/// names) plus the conditioning-image embedding (<c>conditioning_embedding_out_channels</c>).
/// </summary>
public sealed record ControlNetModelConfig : IModelConfig<ControlNetModelConfig>
{
    public const string ClassName = "ControlNetModel";

    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 4;
    [JsonPropertyName("conditioning_channels")] public int ConditioningChannels { get; init; } = 3;
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;
    [JsonPropertyName("freq_shift")] public double FreqShift { get; init; }
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    [JsonPropertyName("mid_block_type")] public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    [JsonPropertyName("only_cross_attention")] public OneOrMany<bool> OnlyCrossAttention { get; init; } = false;
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 2;
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; init; } = 32;
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;
    [JsonPropertyName("cross_attention_dim")] public int CrossAttentionDim { get; init; } = 1280;
    [JsonPropertyName("transformer_layers_per_block")] public OneOrMany<int> TransformerLayersPerBlock { get; init; } = 1;
    [JsonPropertyName("encoder_hid_dim")] public int? EncoderHidDim { get; init; }
    [JsonPropertyName("encoder_hid_dim_type")] public string? EncoderHidDimType { get; init; }
    [JsonPropertyName("attention_head_dim")] public OneOrMany<int> AttentionHeadDim { get; init; } = 8;
    [JsonPropertyName("num_attention_heads")] public OneOrMany<int>? NumAttentionHeads { get; init; }
    [JsonPropertyName("use_linear_projection")] public bool UseLinearProjection { get; init; }
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }
    [JsonPropertyName("addition_embed_type")] public string? AdditionEmbedType { get; init; }
    [JsonPropertyName("addition_time_embed_dim")] public int? AdditionTimeEmbedDim { get; init; }
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }
    [JsonPropertyName("upcast_attention")] public bool UpcastAttention { get; init; }
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";
    [JsonPropertyName("projection_class_embeddings_input_dim")] public int? ProjectionClassEmbeddingsInputDim { get; init; }
    /// <summary>"rgb", or "bgr": the conditioning image's channels are flipped before the embedding.</summary>
    [JsonPropertyName("controlnet_conditioning_channel_order")] public string ControlnetConditioningChannelOrder { get; init; } = "rgb";
    [JsonPropertyName("conditioning_embedding_out_channels")] public int[] ConditioningEmbeddingOutChannels { get; init; } = [16, 32, 96, 256];
    /// <summary>Shuffle-style ControlNets: every residual is averaged over its spatial positions.</summary>
    [JsonPropertyName("global_pool_conditions")] public bool GlobalPoolConditions { get; init; }
    [JsonPropertyName("addition_embed_type_num_heads")] public int AdditionEmbedTypeNumHeads { get; init; } = 64;

    static string? IModelConfig<ControlNetModelConfig>.ConfigClassName => ClassName;

    /// <summary>Reads a config.json; unknown fields and unsupported values are errors naming the file and the field.</summary>
    public static ControlNetModelConfig Load(string path) => ModelConfig.Load<ControlNetModelConfig>(path);

    /// <summary>
    /// diffusers' ControlNetModel.from_unet: the ControlNet of a U-Net copies its encoder's settings; the conditioning
    /// embedding's are given (a single-file ControlNet records only weights, so its architecture is the base model's).
    /// </summary>
    public static ControlNetModelConfig FromUNet(UNet2DConditionModelConfig unet, int[]? conditioningEmbeddingOutChannels = null,
        int conditioningChannels = 3) => new()
    {
        InChannels = unet.InChannels,
        ConditioningChannels = conditioningChannels,
        FlipSinToCos = unet.FlipSinToCos,
        FreqShift = unet.FreqShift,
        DownBlockTypes = unet.DownBlockTypes,
        MidBlockType = unet.MidBlockType,
        OnlyCrossAttention = unet.OnlyCrossAttention,
        BlockOutChannels = unet.BlockOutChannels,
        LayersPerBlock = unet.LayersPerBlock.IsList
            ? throw ConfigErrors.Unsupported("layers_per_block", unet.LayersPerBlock, "one value for a ControlNet")
            : unet.LayersPerBlock.Value,
        DownsamplePadding = unet.DownsamplePadding,
        MidBlockScaleFactor = unet.MidBlockScaleFactor,
        ActFn = unet.ActFn,
        NormNumGroups = unet.NormNumGroups,
        NormEps = unet.NormEps,
        CrossAttentionDim = unet.CrossAttentionDim.IsList
            ? throw ConfigErrors.Unsupported("cross_attention_dim", unet.CrossAttentionDim, "one value for a ControlNet")
            : unet.CrossAttentionDim.Value,
        TransformerLayersPerBlock = unet.TransformerLayersPerBlock,
        EncoderHidDim = unet.EncoderHidDim,
        EncoderHidDimType = unet.EncoderHidDimType,
        AttentionHeadDim = unet.AttentionHeadDim,
        NumAttentionHeads = unet.NumAttentionHeads,
        UseLinearProjection = unet.UseLinearProjection,
        ClassEmbedType = unet.ClassEmbedType,
        AdditionEmbedType = unet.AdditionEmbedType,
        AdditionTimeEmbedDim = unet.AdditionTimeEmbedDim,
        NumClassEmbeds = unet.NumClassEmbeds,
        UpcastAttention = unet.UpcastAttention,
        ResnetTimeScaleShift = unet.ResnetTimeScaleShift,
        ProjectionClassEmbeddingsInputDim = unet.ProjectionClassEmbeddingsInputDim,
        ConditioningEmbeddingOutChannels = conditioningEmbeddingOutChannels ?? [16, 32, 96, 256],
    };

    /// <summary>
    /// The U-Net config whose encoder this ControlNet copies (the up blocks mirror the down blocks): the shared time
    /// embedding, down and mid blocks are built from it, and its checks are the U-Net's.
    /// </summary>
    public UNet2DConditionModelConfig AsUNetConfig() => new()
    {
        InChannels = InChannels,
        FlipSinToCos = FlipSinToCos,
        FreqShift = FreqShift,
        DownBlockTypes = DownBlockTypes,
        MidBlockType = MidBlockType,
        UpBlockTypes = DownBlockTypes?.Reverse().Select(t => t?.Replace("Down", "Up")).ToArray()!,
        OnlyCrossAttention = OnlyCrossAttention,
        BlockOutChannels = BlockOutChannels,
        LayersPerBlock = LayersPerBlock,
        DownsamplePadding = DownsamplePadding,
        MidBlockScaleFactor = MidBlockScaleFactor,
        ActFn = ActFn,
        NormNumGroups = NormNumGroups,
        NormEps = NormEps,
        CrossAttentionDim = CrossAttentionDim,
        TransformerLayersPerBlock = TransformerLayersPerBlock,
        EncoderHidDim = EncoderHidDim,
        EncoderHidDimType = EncoderHidDimType,
        AttentionHeadDim = AttentionHeadDim,
        NumAttentionHeads = NumAttentionHeads,
        UseLinearProjection = UseLinearProjection,
        ClassEmbedType = ClassEmbedType,
        AdditionEmbedType = AdditionEmbedType,
        AdditionTimeEmbedDim = AdditionTimeEmbedDim,
        NumClassEmbeds = NumClassEmbeds,
        UpcastAttention = UpcastAttention,
        ResnetTimeScaleShift = ResnetTimeScaleShift,
        ProjectionClassEmbeddingsInputDim = ProjectionClassEmbeddingsInputDim,
    };

    public void Validate(string source = "ControlNetModel config") => ConfigCheck.Run(source, Validate);

    private void Validate(ConfigCheck check)
    {
        check.NameList(DownBlockTypes, "down_block_types");
        // SDXL ControlNets ("text_time") embed the pooled text and time ids: not supported here
        if (AdditionEmbedType is not null) throw ConfigErrors.Unsupported("addition_embed_type", AdditionEmbedType, "null");
        AsUNetConfig().Validate(source: check.Source);
        check.Positive(ConditioningChannels, "conditioning_channels");
        check.PositiveList(ConditioningEmbeddingOutChannels, "conditioning_embedding_out_channels");
        check.OneOf(ControlnetConditioningChannelOrder, "controlnet_conditioning_channel_order", "rgb", "bgr");
    }

    /// <summary>
    /// Refuses, in one line, a ControlNet that cannot steer <paramref name="unet"/>: its residuals must match the U-Net's skip
    /// connections block for block, and it must read the same text states (cross_attention_dim).
    /// </summary>
    public void CheckFits(UNet2DConditionModelConfig unet, string name)
    {
        int n = BlockOutChannels.Length;
        var unetCross = unet.CrossAttentionDim.PerBlock(unet.BlockOutChannels.Length, "cross_attention_dim");
        if (unetCross.Any(d => d != CrossAttentionDim))
            throw new ArgumentException($"{name}: its cross_attention_dim is {CrossAttentionDim} but the model's is {unet.CrossAttentionDim}: it was made for another base model");
        var unetLayers = unet.LayersPerBlock.PerBlock(unet.BlockOutChannels.Length, "layers_per_block");
        if (!BlockOutChannels.SequenceEqual(unet.BlockOutChannels) || unetLayers.Any(l => l != LayersPerBlock) || n != unet.DownBlockTypes.Length)
            throw new ArgumentException($"{name}: its block layout (block_out_channels [{string.Join(", ", BlockOutChannels)}], layers_per_block {LayersPerBlock}) does not match the model's ([{string.Join(", ", unet.BlockOutChannels)}], {unet.LayersPerBlock}): it was made for another base model");
        if (InChannels != unet.OutChannels)
            throw new ArgumentException($"{name}: it takes {InChannels}-channel latents but the model denoises {unet.OutChannels}-channel ones: it was made for another base model");
    }
}

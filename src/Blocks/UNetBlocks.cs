using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Blocks;

/// <summary>
/// diffusers' <c>get_down_block</c> / <c>get_up_block</c> (unet_2d_blocks.py): the one place a block type named in a
/// config becomes a block, for the U-Nets and the VAE alike. An unknown name is a <see cref="Torch.Config.ConfigException"/>
/// naming the config field it came from (e.g. <c>down_block_types[2]</c>).
/// </summary>
public static class UNetBlocks
{
    public static readonly IReadOnlyList<string> DownBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D", "AttnDownBlock2D", "DownEncoderBlock2D"];
    public static readonly IReadOnlyList<string> UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "AttnUpBlock2D", "UpDecoderBlock2D"];

    /// <summary>diffusers accepts "UNetRes" before a block type name ("UNetResDownBlock2D").</summary>
    public static string Strip(string type) => type.StartsWith("UNetRes", StringComparison.Ordinal) ? type[7..] : type;

    /// <summary>
    /// Refuses, naming <c>field[i]</c>, the first of <paramref name="types"/> that is not one of <paramref name="supported"/>
    /// (the subset of the block types a model's forward pass can run).
    /// </summary>
    public static void Check(IReadOnlyList<string> types, string field, params string[] supported)
    {
        for (int i = 0; i < types.Count; i++)
            if (!supported.Contains(Strip(types[i])))
                throw ConfigErrors.Unsupported($"{field}[{i}]", types[i], string.Join(", ", supported.Select(s => $"\"{s}\"")));
    }

    /// <param name="field">The config field the type came from, for the error: <c>down_block_types[i]</c>.</param>
    /// <param name="attentionHeadDim">Channels per head of AttnDownBlock2D (null: one head over all channels).</param>
    /// <param name="downsampleType">AttnDownBlock2D's downsampler, "conv" (the default) or "resnet".</param>
    public static Module GetDownBlock(string downBlockType, string field, int numLayers, long inChannels, long outChannels,
        ResnetSettings resnet, bool addDownsample, int downsamplePadding = 1, CrossAttentionSettings? crossAttention = null,
        int? attentionHeadDim = null, string? downsampleType = null, Generator? generator = null) => Strip(downBlockType) switch
    {
        "DownBlock2D" => new DownBlock2D(numLayers, inChannels, outChannels, resnet, addDownsample, downsamplePadding, generator),
        "CrossAttnDownBlock2D" => new CrossAttnDownBlock2D(numLayers, inChannels, outChannels, resnet, NeedCrossAttention(crossAttention, field),
            addDownsample, downsamplePadding, generator),
        "AttnDownBlock2D" => new AttnDownBlock2D(numLayers, inChannels, outChannels, resnet, attentionHeadDim, downsamplePadding,
            addDownsample ? downsampleType ?? "conv" : null, generator),
        "DownEncoderBlock2D" => new DownEncoderBlock2D(numLayers, inChannels, outChannels, resnet, addDownsample, downsamplePadding, generator),
        _ => throw ConfigErrors.Unsupported(field, downBlockType, string.Join(", ", DownBlockTypes)),
    };

    /// <param name="field">The config field the type came from, for the error: <c>up_block_types[i]</c>.</param>
    /// <param name="inChannels">The skip channels of the last resnet; the input channels of UpDecoderBlock2D.</param>
    /// <param name="prevOutputChannel">The previous up block's output channels (not used by UpDecoderBlock2D).</param>
    /// <param name="attentionHeadDim">Channels per head of AttnUpBlock2D (null: one head over all channels).</param>
    /// <param name="upsampleType">AttnUpBlock2D's upsampler, "conv" (the default) or "resnet".</param>
    public static Module GetUpBlock(string upBlockType, string field, int numLayers, long inChannels, long outChannels,
        long? prevOutputChannel, ResnetSettings resnet, bool addUpsample, CrossAttentionSettings? crossAttention = null,
        int? attentionHeadDim = null, string? upsampleType = null, Generator? generator = null)
    {
        long Previous() => prevOutputChannel ?? throw new ArgumentException($"{upBlockType} needs the previous block's output channels");
        return Strip(upBlockType) switch
        {
            "UpBlock2D" => new UpBlock2D(numLayers, inChannels, Previous(), outChannels, resnet, addUpsample, generator),
            "CrossAttnUpBlock2D" => new CrossAttnUpBlock2D(numLayers, inChannels, Previous(), outChannels, resnet,
                NeedCrossAttention(crossAttention, field), addUpsample, generator),
            "AttnUpBlock2D" => new AttnUpBlock2D(numLayers, inChannels, Previous(), outChannels, resnet, attentionHeadDim,
                addUpsample ? upsampleType ?? "conv" : null, generator),
            "UpDecoderBlock2D" => new UpDecoderBlock2D(numLayers, inChannels, outChannels, resnet, addUpsample, generator),
            _ => throw ConfigErrors.Unsupported(field, upBlockType, string.Join(", ", UpBlockTypes)),
        };
    }

    // diffusers raises "cross_attention_dim must be specified for CrossAttn…Block2D".
    private static CrossAttentionSettings NeedCrossAttention(CrossAttentionSettings? settings, string field) =>
        settings ?? throw ConfigErrors.Invalid(field, "a cross-attention block needs cross_attention_dim");
}

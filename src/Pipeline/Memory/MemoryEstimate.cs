using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Memory;

/// <summary>How attention is computed, which decides whether its L × L score maps exist in memory.</summary>
/// <param name="Fused">A fused kernel computes the scores block by block, never whole: libtorch's scaled-dot-product
/// kernel (libtorch ≥ 2.1) or, on the CPU, the binding's own (native/src/attention.cpp, bounded memory at any length).</param>
/// <param name="SliceSize">Attention sliced to this many (batch × head) rows at a time; null: all rows at once.</param>
public readonly record struct AttentionCost(bool Fused, int? SliceSize = null)
{
    /// <summary>
    /// How attention runs on <paramref name="device"/> from the calling thread: fused where libtorch has its kernel, or on
    /// the CPU where the binding's fused kernel is on (<see cref="TorchRuntime.FusedCpuAttentionActive"/>; the pipelines'
    /// attention has no mask or dropout, which it would decline).
    /// </summary>
    public static AttentionCost On(Device device, int? sliceSize = null) =>
        new(TorchRuntime.HasFusedAttention || device.Type == DeviceType.Cpu && TorchRuntime.FusedCpuAttentionActive, sliceSize);
}

/// <summary>
/// Peak memory of the models' forward passes, in bytes, from their configs and the request's sizes. A guard, not a
/// profiler: it counts the activations that dominate (skip connections, the working copies of the largest feature
/// map, attention score maps, the decoder at full resolution) with a margin, so that a request it lets through
/// fits and one it refuses would not have. Everything is computed in double: a refused request's sizes may
/// overflow a long.
/// </summary>
public static class MemoryEstimate
{
    /// <summary>
    /// Copies of a block's largest feature map alive at once (input, group-norm output, activation, convolution output,
    /// residual sum, and the allocator's slack): a conservative multiplier.
    /// </summary>
    private const double WorkingCopies = 6;

    /// <summary>Score map copies of unfused attention: QKᵀ and its softmax.</summary>
    private const double ScoreCopies = 2;

    /// <summary>Linear (per-token) attention tensors in units of channels: Q, K, V, output, and the feed-forward's 4× GEGLU (×2).</summary>
    private const double AttentionTokenChannels = 12;

    /// <summary>One denoising step of a latent U-Net over <paramref name="rows"/> latents (the CFG-doubled batch).</summary>
    public static double LatentUNetStep(UNet2DConditionModelConfig config, long latentHeight, long latentWidth, long rows, int elementSize, AttentionCost attention)
    {
        var levels = config.BlockOutChannels.Length;
        var heads = (config.NumAttentionHeads ?? config.AttentionHeadDim).PerBlock(levels, "attention_head_dim");
        var layers = config.LayersPerBlock.PerBlock(levels, "layers_per_block");
        var hasAttention = config.DownBlockTypes.Select(t => t.Contains("Attn", StringComparison.Ordinal)).ToArray();
        return UNetStep(config.BlockOutChannels, layers, hasAttention, heads, config.MidBlockType is not null, latentHeight, latentWidth, rows, elementSize, attention);
    }

    /// <summary>One denoising step of a pixel U-Net (<see cref="UNet2DModel"/>) over <paramref name="rows"/> images.</summary>
    public static double PixelUNetStep(UNet2DModelConfig config, long height, long width, long rows, int elementSize, AttentionCost attention)
    {
        var channels = config.BlockOutChannels;
        // diffusers: heads = channels / attention_head_dim, one head when it is null
        var heads = channels.Select(c => config.AttentionHeadDim is int d && d > 0 ? Math.Max(1, c / d) : 1).ToArray();
        var layers = Enumerable.Repeat(config.LayersPerBlock, channels.Length).ToArray();
        var hasAttention = config.DownBlockTypes.Select(t => t.Contains("Attn", StringComparison.Ordinal)).ToArray();
        return UNetStep(channels, layers, hasAttention, heads, config.AddAttention, height, width, rows, elementSize, attention);
    }

    private static double UNetStep(int[] channels, int[] layers, bool[] hasAttention, int[] heads, bool midAttention,
        long height, long width, long rows, int elementSize, AttentionCost attention)
    {
        double skips = 0, peak = 0;
        for (int i = 0; i < channels.Length; i++)
        {
            var area = Area(height, width, i);
            // The down path keeps every resnet's output (and the downsampler's) for the up path's skip connections.
            skips += (layers[i] + 1) * (double)channels[i] * area;
            // The up path's resnets see the skip concatenated to their input: about 2 × channels.
            var working = WorkingCopies * 2 * channels[i] * area;
            if (i < hasAttention.Length && hasAttention[i]) working += Attention(area, channels[i], heads[i], rows, attention);
            peak = Math.Max(peak, working);
        }
        var last = channels.Length - 1;
        if (midAttention) peak = Math.Max(peak, WorkingCopies * channels[last] * Area(height, width, last) + Attention(Area(height, width, last), channels[last], heads[last], rows, attention));
        return rows * elementSize * (skips + peak);
    }

    /// <summary>Elements per row of one self-attention layer over <paramref name="tokens"/> tokens (score maps counted over all rows, then divided back).</summary>
    private static double Attention(double tokens, int channels, int heads, long rows, AttentionCost cost)
    {
        var linear = AttentionTokenChannels * channels * tokens;
        if (cost.Fused) return linear;
        double mapRows = (double)rows * heads;
        if (cost.SliceSize is int slice && slice > 0) mapRows = Math.Min(mapRows, slice);
        return linear + ScoreCopies * mapRows * tokens * tokens / rows;
    }

    /// <summary>
    /// Decoding <paramref name="images"/> latents to <paramref name="height"/> × <paramref name="width"/> pixels (encoding an
    /// image costs about the same). Slicing decodes one image at a time; tiling runs the decoder on tiles of the
    /// VAE's sample_size and keeps only the full-size output.
    /// </summary>
    public static double VaeDecode(AutoencoderKLConfig config, long height, long width, long images, int elementSize, bool tiling, bool slicing, bool fusedAttention)
    {
        var (h, w) = tiling ? (Math.Min(height, config.SampleSize), Math.Min(width, config.SampleSize)) : (height, width);
        var channels = config.BlockOutChannels;
        double peak = 0;
        for (int i = 0; i < channels.Length; i++)
        {
            // The decoder's level i receives the level below upsampled: its convolutions see max(cᵢ, cᵢ₊₁) channels.
            var c = Math.Max(channels[i], channels[Math.Min(i + 1, channels.Length - 1)]);
            peak = Math.Max(peak, WorkingCopies * c * Area(h, w, i));
        }
        var last = channels.Length - 1;
        var tokens = Area(h, w, last);
        if (config.MidBlockAddAttention && !fusedAttention) peak += ScoreCopies * tokens * tokens;
        var parallel = slicing ? 1 : images;
        // The decoded float32 images, their scaled and clamped copies.
        var output = 3.0 * images * 3 * height * width * 4;
        return parallel * elementSize * peak + output;
    }

    /// <summary>What a finished image keeps until the request returns: float32 pixels [H, W, 3], 8-bit pixels twice (image and grid).</summary>
    public static double ResultImage(long height, long width, long channels = 3) => (double)height * width * channels * (4 + 2);

    /// <summary>
    /// A training step: parameters with their gradients and AdamW's two moments (and an EMA copy), plus the batch's
    /// activations, taken as <paramref name="activationFactor"/> copies of each sample per parameterised layer's
    /// worth of width, a floor rather than a ceiling: the trainer knows the model only by its parameter count.
    /// </summary>
    public static double TrainingStep(long parameters, bool ema, long batchSize, IReadOnlyList<long> itemShape, double activationFactor = 64)
    {
        var state = parameters * 4.0 * (ema ? 5 : 4);
        var item = itemShape.Aggregate(1.0, (a, d) => a * d);
        return state + batchSize * item * 4.0 * activationFactor;
    }

    private static double Area(long height, long width, int level)
    {
        var f = 1L << level;
        return Math.Ceiling((double)height / f) * Math.Ceiling((double)width / f);
    }
}

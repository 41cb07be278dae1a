using LatentDiffusion.Autoencoder;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.TextEncoder;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>
/// Analytic FLOP counts of one forward pass, read off the configs (diffusers' / transformers' module
/// structure): FLOPs = 2 · MACs of every convolution, linear layer and attention matmul (Q·Kᵀ and
/// softmax·V). Normalisations, activations, softmax, residual adds, resampling and embeddings are not
/// counted (they are a few percent and memory-bound). A convolution costs Cin·Cout·k²·Hout·Wout MACs,
/// a linear layer in·out per token, attention 2·Nq·Nk·C MACs whatever the number of heads.
/// Check: without the attention matmuls (which module-hook counters such as thop do not see) the SD1.5
/// U-Net at 64×64 latents counts 339 GMACs per image, the figure BK-SDM (Kim et al. 2023, Table 1)
/// reports; the attention matmuls add 62 GMACs (401.6 GMACs, 803 GFLOP in all).
/// </summary>
public static class FlopCounter
{
    [ThreadStatic] private static bool skipAttention;

    /// <summary>Counts without the attention matmuls (to compare with counters that only see conv and linear modules).</summary>
    public static T WithoutAttentionMatmuls<T>(Func<T> count)
    {
        skipAttention = true;
        try { return count(); }
        finally { skipAttention = false; }
    }

    private static double Conv(long cin, long cout, long k, long h, long w) => (double)cin * cout * k * k * h * w;

    private static double Linear(long cin, long cout, long tokens) => (double)cin * cout * tokens;

    private static double Attention(long queries, long keys, long channels) => skipAttention ? 0 : 2.0 * queries * keys * channels;

    /// <summary>diffusers' ResnetBlock2D: two 3×3 convs, the time-embedding projection, a 1×1 shortcut when the width changes.</summary>
    private static double Resnet(long cin, long cout, long h, long w, long temb)
    {
        var macs = Conv(cin, cout, 3, h, w) + Conv(cout, cout, 3, h, w);
        if (temb > 0) macs += Linear(temb, cout, 1);
        if (cin != cout) macs += Conv(cin, cout, 1, h, w);
        return macs;
    }

    /// <summary>diffusers' Transformer2DModel: proj_in, <paramref name="layers"/> × (self-attention, cross-attention, GEGLU feed-forward), proj_out.</summary>
    private static double Transformer(long c, long h, long w, long crossDim, long textTokens, int layers)
    {
        long n = h * w;
        var macs = 2 * Linear(c, c, n); // proj_in, proj_out (1×1 conv or linear: the same count)
        for (int l = 0; l < layers; l++)
        {
            macs += 4 * Linear(c, c, n) + Attention(n, n, c);                                            // attn1: q, k, v, out
            macs += 2 * Linear(c, c, n) + 2 * Linear(crossDim, c, textTokens) + Attention(n, textTokens, c); // attn2: q, out; k, v on the text
            macs += Linear(c, 8 * c, n) + Linear(4 * c, c, n);                                             // GEGLU: c → 2·4c, 4c → c
        }
        return macs;
    }

    /// <summary>FLOPs of UNet2DConditionModel on [batch, in, h, w] latents and [batch, textTokens, cross_attention_dim] text.</summary>
    public static double UNet2DCondition(UNet2DConditionModelConfig config, long batch, long h, long w, long textTokens)
    {
        int n = config.BlockOutChannels.Length;
        var ch = config.BlockOutChannels;
        var layers = config.LayersPerBlock.PerBlock(n, "layers_per_block");
        var cross = config.CrossAttentionDim.PerBlock(n, "cross_attention_dim");
        var tlayers = config.TransformerLayersPerBlock.PerBlock(n, "transformer_layers_per_block");
        long temb = config.TimeEmbeddingDim ?? 4L * ch[0];

        double macs = Linear(ch[0], temb, 1) + Linear(temb, temb, 1); // time embedding MLP
        macs += Conv(config.InChannels, ch[0], 3, h, w);                  // conv_in
        long rh = h, rw = w, cin = ch[0];
        for (int i = 0; i < n; i++)
        {
            var attn = config.DownBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            for (int j = 0; j < layers[i]; j++)
            {
                macs += Resnet(j == 0 ? cin : ch[i], ch[i], rh, rw, temb);
                if (attn) macs += Transformer(ch[i], rh, rw, cross[i], textTokens, tlayers[i]);
            }
            cin = ch[i];
            if (i < n - 1)
            {
                rh = (rh + 1) / 2; rw = (rw + 1) / 2;
                macs += Conv(ch[i], ch[i], 3, rh, rw); // stride-2 downsampler, counted at its output size
            }
        }
        if (config.MidBlockType is not null)
        {
            macs += 2 * Resnet(ch[^1], ch[^1], rh, rw, temb);
            if (config.MidBlockType.Contains("CrossAttn", StringComparison.Ordinal))
                macs += Transformer(ch[^1], rh, rw, cross[^1], textTokens, tlayers[^1]);
        }
        var rev = ch.Reverse().ToArray();
        var revLayers = layers.Reverse().ToArray();
        var revCross = cross.Reverse().ToArray();
        var revT = tlayers.Reverse().ToArray();
        long output = rev[0];
        for (int i = 0; i < n; i++)
        {
            long prev = output;
            output = rev[i];
            long input = rev[Math.Min(i + 1, n - 1)];
            var attn = config.UpBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            int count = revLayers[i] + 1;
            for (int j = 0; j < count; j++)
            {
                long skip = j == count - 1 ? input : output;
                long resIn = j == 0 ? prev : output;
                macs += Resnet(resIn + skip, output, rh, rw, temb);
                if (attn) macs += Transformer(output, rh, rw, revCross[i], textTokens, revT[i]);
            }
            if (i < n - 1)
            {
                rh *= 2; rw *= 2;
                macs += Conv(output, output, 3, rh, rw); // upsampler conv after nearest ×2
            }
        }
        macs += Conv(ch[0], config.OutChannels, 3, rh, rw); // conv_out
        return 2 * batch * macs;
    }

    /// <summary>FLOPs of AutoencoderKL.Decode on [batch, latent_channels, h, w] latents.</summary>
    public static double VaeDecode(AutoencoderKLConfig config, long batch, long h, long w)
    {
        var ch = config.BlockOutChannels;
        int n = ch.Length;
        long c = ch[^1], lc = config.LatentChannels;
        double macs = Conv(lc, lc, 1, h, w);                            // post_quant_conv
        macs += Conv(lc, c, 3, h, w);                                     // conv_in
        macs += 2 * Resnet(c, c, h, w, 0);                                // mid block resnets
        macs += 4 * Linear(c, c, h * w) + Attention(h * w, h * w, c);     // mid block attention (one head)
        long rh = h, rw = w, output = ch[^1];
        for (int i = 0; i < n; i++)
        {
            long prev = output;
            output = ch[n - 1 - i];
            for (int j = 0; j < config.LayersPerBlock + 1; j++)
                macs += Resnet(j == 0 ? prev : output, output, rh, rw, 0);
            if (i < n - 1)
            {
                rh *= 2; rw *= 2;
                macs += Conv(output, output, 3, rh, rw);
            }
        }
        macs += Conv(ch[0], config.OutChannels, 3, rh, rw);              // conv_out
        return 2 * batch * macs;
    }

    /// <summary>FLOPs of CLIPTextModel on [batch, tokens] ids.</summary>
    public static double ClipText(ClipTextConfig config, long batch, long tokens)
    {
        long d = config.HiddenSize;
        double perLayer = 4 * Linear(d, d, tokens) + Attention(tokens, tokens, d) + Linear(d, config.IntermediateSize, tokens) + Linear(config.IntermediateSize, d, tokens);
        return 2 * batch * perLayer * config.NumHiddenLayers;
    }
}

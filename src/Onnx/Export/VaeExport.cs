using LatentDiffusion.Autoencoder;
using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Onnx.Export;

/// <summary>
/// An <see cref="AutoencoderKL"/> as diffusers' two ONNX graphs. vae_decoder: latent_sample [batch, C, h, w] (already divided
/// by the scaling factor) → sample. vae_encoder: sample [batch, 3, H, W] → latent_sample (the posterior's mean, where
/// diffusers' export draws a sample with the runtime's own generator) and latent_parameters (the moments μ ‖ log σ²,
/// which our engine samples with the request's seed). Batch and size are dynamic.
/// </summary>
public static class VaeExport
{
    public static OnnxGraph EmitDecoder(AutoencoderKL vae, DType dtype = DType.Float32) => ModuleEmitter.Build("vae_decoder", dtype, e =>
    {
        var g = e.Graph;
        var c = vae.Config;
        var z = g.Input("latent_sample", e.DType, "batch", (long)c.LatentChannels, "latent_height", "latent_width");
        var h = vae.PostQuantConv is { } pq ? e.Conv2d("post_quant_conv", pq, z) : z;
        var d = vae.Decoder;
        h = e.Conv2d("decoder.conv_in", d.ConvIn, h);
        h = MidBlock(e, "decoder.mid_block", d.MidBlock, h);
        for (int i = 0; i < d.UpBlocks.Count; i++)
        {
            var block = d.UpBlocks[i];
            for (int j = 0; j < block.Resnets.Count; j++) h = e.Resnet($"decoder.up_blocks.{i}.resnets.{j}", block.Resnets[j], h, null);
            if (block.Upsamplers is { Count: > 0 } ups) h = e.Upsample($"decoder.up_blocks.{i}.upsamplers.0", ups[0], h, null);
        }
        h = e.Conv2d("decoder.conv_out", d.ConvOut, e.Activation(d.ConvAct, e.GroupNorm("decoder.conv_norm_out", d.ConvNormOut, h)));
        g.Output(h, "sample", e.DType, "batch", (long)c.OutChannels, "height", "width");
    });

    public static OnnxGraph EmitEncoder(AutoencoderKL vae, DType dtype = DType.Float32) => ModuleEmitter.Build("vae_encoder", dtype, e =>
    {
        var g = e.Graph;
        var c = vae.Config;
        var x = g.Input("sample", e.DType, "batch", (long)c.InChannels, "height", "width");
        var enc = vae.Encoder;
        var h = e.Conv2d("encoder.conv_in", enc.ConvIn, x);
        for (int i = 0; i < enc.DownBlocks.Count; i++)
        {
            var block = enc.DownBlocks[i];
            for (int j = 0; j < block.Resnets.Count; j++) h = e.Resnet($"encoder.down_blocks.{i}.resnets.{j}", block.Resnets[j], h, null);
            if (block.Downsamplers is { Count: > 0 } downs) h = e.Downsample($"encoder.down_blocks.{i}.downsamplers.0", downs[0], h);
        }
        h = MidBlock(e, "encoder.mid_block", enc.MidBlock, h);
        h = e.Conv2d("encoder.conv_out", enc.ConvOut, e.Activation(enc.ConvAct, e.GroupNorm("encoder.conv_norm_out", enc.ConvNormOut, h)));
        if (vae.QuantConv is { } q) h = e.Conv2d("quant_conv", q, h);
        var mean = g.Op("Slice", [h, g.Ints(0), g.Ints(c.LatentChannels), g.Ints(1)]);
        g.Output(mean, "latent_sample", e.DType, "batch", (long)c.LatentChannels, "latent_height", "latent_width");
        g.Output(h, "latent_parameters", e.DType, "batch", 2L * c.LatentChannels, "latent_height", "latent_width");
    });

    // UNetMidBlock2D: resnet, then (spatial attention, resnet) pairs; the VAE's has no timestep embedding.
    private static string MidBlock(ModuleEmitter e, string prefix, UNetMidBlock2D mid, string h)
    {
        var resnets = (ModuleList<ResnetBlock2D>)ModuleEmitter.Child(mid, "resnets");
        var attentions = (ModuleList<Attention>)ModuleEmitter.Child(mid, "attentions");
        h = e.Resnet($"{prefix}.resnets.0", resnets[0], h, null);
        for (int j = 1; j < resnets.Count; j++)
        {
            if (attentions.Count > 0) h = e.SpatialAttention($"{prefix}.attentions.{j - 1}", attentions[j - 1], h);
            h = e.Resnet($"{prefix}.resnets.{j}", resnets[j], h, null);
        }
        return h;
    }
}

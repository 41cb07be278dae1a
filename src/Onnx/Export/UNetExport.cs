using LatentDiffusion.Blocks;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Onnx.Export;

/// <summary>
/// A <see cref="UNet2DConditionModel"/> as the ONNX graph diffusers' export writes (inputs sample [batch, channels, height,
/// width], timestep float32 [batch or 1], encoder_hidden_states [batch, sequence, dim]; output out_sample), emitted from
/// our module tree in the order of its Forward. Batch, height, width and sequence are dynamic.
/// </summary>
public static class UNetExport
{
    public static OnnxGraph Emit(UNet2DConditionModel unet, DType dtype = DType.Float32) => ModuleEmitter.Build("unet", dtype, e => EmitInto(e, unet));

    private static void EmitInto(ModuleEmitter e, UNet2DConditionModel unet)
    {
        var g = e.Graph;
        var c = unet.Config;
        var dtype = e.DType;
        var sample = g.Input("sample", dtype, "batch", (long)c.InChannels, "height", "width");
        var timestep = g.Input("timestep", DType.Float32, "timestep_batch");
        var context = g.Input("encoder_hidden_states", dtype, "batch", "sequence", (long)c.CrossAttentionDim.PerBlock(c.BlockOutChannels.Length, "cross_attention_dim")[0]);

        // 1. time: one timestep per sample (a [1] timestep broadcasts), sinusoidal projection, the embedding MLP
        var batch = g.Op("Slice", [g.Op("Shape", [sample]), g.Ints(0), g.Ints(1)]);
        var t = g.Op("Expand", [timestep, batch]);
        var temb = TimeEmbedding(e, unet, t);

        // 2. down, keeping every state for the skips
        var h = e.Conv2d("conv_in", (Conv2d)ModuleEmitter.Child(unet, "conv_in"), sample);
        var skips = new List<string> { h };
        var down = (ModuleList<Module>)ModuleEmitter.Child(unet, "down_blocks");
        for (int i = 0; i < down.Count; i++)
        {
            var prefix = $"down_blocks.{i}";
            var resnets = Resnets(down[i]);
            var attentions = Attentions(down[i]);
            for (int j = 0; j < resnets.Count; j++)
            {
                h = e.Resnet($"{prefix}.resnets.{j}", resnets[j], h, temb);
                if (attentions is not null) h = e.Transformer2D($"{prefix}.attentions.{j}", attentions[j], h, context);
                skips.Add(h);
            }
            if (ModuleEmitter.OptionalChild(down[i], "downsamplers") is ModuleList<Downsample2D> ds)
            {
                h = e.Downsample($"{prefix}.downsamplers.0", ds[0], h);
                skips.Add(h);
            }
            else if (ModuleEmitter.OptionalChild(down[i], "downsamplers") is not null) throw ModuleEmitter.Unsupported($"the downsampler of {down[i].GetType().Name}");
        }

        // 3. mid: resnet, then (attention, resnet) pairs
        if (ModuleEmitter.OptionalChild(unet, "mid_block") is { } mid)
        {
            if (mid is not UNetMidBlock2DCrossAttn) throw ModuleEmitter.Unsupported($"the mid block {mid.GetType().Name}");
            var resnets = Resnets(mid);
            var attentions = Attentions(mid)!;
            h = e.Resnet("mid_block.resnets.0", resnets[0], h, temb);
            for (int j = 1; j < resnets.Count; j++)
            {
                h = e.Transformer2D($"mid_block.attentions.{j - 1}", attentions[j - 1], h, context);
                h = e.Resnet($"mid_block.resnets.{j}", resnets[j], h, temb);
            }
        }

        // 4. up: each resnet takes the last skip, joined along the channels
        var up = (ModuleList<Module>)ModuleEmitter.Child(unet, "up_blocks");
        for (int i = 0; i < up.Count; i++)
        {
            var prefix = $"up_blocks.{i}";
            var resnets = Resnets(up[i]);
            var attentions = Attentions(up[i]);
            for (int j = 0; j < resnets.Count; j++)
            {
                var skip = skips[^1];
                skips.RemoveAt(skips.Count - 1);
                h = e.Resnet($"{prefix}.resnets.{j}", resnets[j], g.Op("Concat", [h, skip], ("axis", 1L)), temb);
                if (attentions is not null) h = e.Transformer2D($"{prefix}.attentions.{j}", attentions[j], h, context);
            }
            if (ModuleEmitter.OptionalChild(up[i], "upsamplers") is ModuleList<Upsample2D> us)
                h = e.Upsample($"{prefix}.upsamplers.0", us[0], h, skips[^1]);
            else if (ModuleEmitter.OptionalChild(up[i], "upsamplers") is not null) throw ModuleEmitter.Unsupported($"the upsampler of {up[i].GetType().Name}");
        }

        // 5. out
        h = e.Activation(ModuleEmitter.Child(unet, "conv_act"), e.GroupNorm("conv_norm_out", (GroupNorm)ModuleEmitter.Child(unet, "conv_norm_out"), h));
        h = e.Conv2d("conv_out", (Conv2d)ModuleEmitter.Child(unet, "conv_out"), h);
        g.Output(h, "out_sample", dtype, "batch", (long)c.OutChannels, "height", "width");
    }

    // diffusers' Timesteps: [sin, cos](scale · t · exp(−ln(max_period) · i / (half − shift))), flipped to [cos, sin]; then
    // TimestepEmbedding's linear_1, act, linear_2. The sinusoid runs in float32, as diffusers' does.
    private static string TimeEmbedding(ModuleEmitter e, UNet2DConditionModel unet, string t)
    {
        var g = e.Graph;
        if (ModuleEmitter.Child(unet, "time_proj") is not Timesteps proj) throw ModuleEmitter.Unsupported("Fourier time embeddings");
        if (proj.NumChannels % 2 == 1) throw ModuleEmitter.Unsupported("odd timestep embedding widths");
        var half = proj.NumChannels / 2;
        using var exponent = Tensors.Arange(0, half, 1, DType.Float32) * -Math.Log(proj.MaxPeriod);
        using var scaled = exponent / (half - proj.DownscaleFreqShift);
        using var frequencies = scaled.Exp() * proj.Scale;
        using var row = frequencies.Unsqueeze(0);
        var arguments = g.Op("Mul", [g.Op("Unsqueeze", [t, g.Ints(1)]), g.Constant(row, "frequencies")]);
        string[] parts = [g.Op("Sin", [arguments]), g.Op("Cos", [arguments])];
        var emb = g.Op("Concat", proj.FlipSinToCos ? [parts[1], parts[0]] : parts, ("axis", -1L));
        if (e.DType != DType.Float32) emb = g.Op("Cast", [emb], ("to", (long)OnnxGraph.ElementType(e.DType)));
        var embedding = (TimestepEmbedding)ModuleEmitter.Child(unet, "time_embedding");
        if (embedding.CondProj is not null || ModuleEmitter.OptionalChild(embedding, "post_act") is not null)
            throw ModuleEmitter.Unsupported("time embeddings with cond_proj or post_act");
        var x = e.Linear("time_embedding.linear_1", embedding.Linear1, emb);
        if (ModuleEmitter.OptionalChild(embedding, "act") is { } act) x = e.Activation(act, x);
        return e.Linear("time_embedding.linear_2", embedding.Linear2, x);
    }

    private static ModuleList<ResnetBlock2D> Resnets(Module block) =>
        ModuleEmitter.Child(block, "resnets") as ModuleList<ResnetBlock2D> ?? throw ModuleEmitter.Unsupported($"the block {block.GetType().Name}");

    private static ModuleList<Transformer2DModel>? Attentions(Module block) => ModuleEmitter.OptionalChild(block, "attentions") switch
    {
        null => null,
        ModuleList<Transformer2DModel> transformers => transformers,
        _ => throw ModuleEmitter.Unsupported($"the block {block.GetType().Name} (spatial self-attention)"),
    };
}

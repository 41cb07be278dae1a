using LatentDiffusion.Blocks;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Onnx.Export;

/// <summary>
/// A <see cref="UNet2DConditionModel"/> as the ONNX graph diffusers' export writes (inputs sample [batch, channels, height,
/// width], timestep float32 [batch or 1], encoder_hidden_states [batch, sequence, dim]; output out_sample), emitted from
/// our module tree in the order of its Forward. Batch, height, width and sequence are dynamic. An SDXL U-Net
/// (addition_embed_type "text_time") also takes optimum's text_embeds [batch, pooled dim] and time_ids [batch, ids]
/// (diffusers' added_cond_kwargs), in the graph's dtype.
/// </summary>
public static class UNetExport
{
    /// <param name="timeIds">SDXL: the time ids per sample, 6 for a base (sizes and crop), 5 for a refiner (requires_aesthetics_score).</param>
    public static OnnxGraph Emit(UNet2DConditionModel unet, DType dtype = DType.Float32, int timeIds = 6) => ModuleEmitter.Build("unet", dtype, e => EmitInto(e, unet, timeIds));

    private static void EmitInto(ModuleEmitter e, UNet2DConditionModel unet, int timeIds)
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
        if (new[] { "class_embedding", "time_embed_act", "encoder_hid_proj" }.Any(name => ModuleEmitter.OptionalChild(unet, name) is not null))
            throw ModuleEmitter.Unsupported("U-Nets with class embeddings, time_embedding_act_fn or encoder_hid_proj");
        var temb = TimeEmbedding(e, unet, t);
        if (unet.TakesAddedConditions) temb = g.Op("Add", [temb, AddedEmbedding(e, unet, timeIds)]);

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

    // diffusers' Timesteps, then TimestepEmbedding's linear_1, act, linear_2.
    private static string TimeEmbedding(ModuleEmitter e, UNet2DConditionModel unet, string t)
    {
        if (ModuleEmitter.Child(unet, "time_proj") is not Timesteps proj) throw ModuleEmitter.Unsupported("Fourier time embeddings");
        return Mlp(e, "time_embedding", (TimestepEmbedding)ModuleEmitter.Child(unet, "time_embedding"), ToGraphDType(e, Sinusoid(e, proj, t)));
    }

    // SDXL's "text_time" (TextTimeEmbedding): each time id through add_time_proj ([batch·ids] → [batch, ids · dim]), after the
    // pooled text embedding, through add_embedding; the caller adds the result to the timestep embedding.
    private static string AddedEmbedding(ModuleEmitter e, UNet2DConditionModel unet, int idCount)
    {
        var g = e.Graph;
        var dim = unet.Config.AdditionTimeEmbedDim!.Value;
        var width = unet.Config.ProjectionClassEmbeddingsInputDim!.Value - idCount * dim;
        if (width <= 0)
            throw new ArgumentException($"the U-Net's projection_class_embeddings_input_dim {unet.Config.ProjectionClassEmbeddingsInputDim} leaves no pooled text width beside {idCount} time ids × {dim}");
        var text = g.Input("text_embeds", e.DType, "batch", (long)width);
        var ids = g.Input("time_ids", e.DType, "batch", (long)idCount);
        var proj = (Timesteps)ModuleEmitter.Child(unet, "add_time_proj");
        var flat = g.Op("Reshape", [e.DType == DType.Float32 ? ids : g.Op("Cast", [ids], ("to", (long)OnnxGraph.ElementType(DType.Float32))), g.Ints(-1)]);
        var embedded = ToGraphDType(e, g.Op("Reshape", [Sinusoid(e, proj, flat), g.Ints(-1, (long)idCount * dim)]));
        var joined = g.Op("Concat", [text, embedded], ("axis", -1L));
        return Mlp(e, "add_embedding", (TimestepEmbedding)ModuleEmitter.Child(unet, "add_embedding"), joined);
    }

    // diffusers' get_timestep_embedding: [sin, cos](scale · t · exp(−ln(max_period) · i / (half − shift))), flipped to
    // [cos, sin], in float32 as diffusers computes it, for a float32 [n] value.
    private static string Sinusoid(ModuleEmitter e, Timesteps proj, string t)
    {
        var g = e.Graph;
        if (proj.NumChannels % 2 == 1) throw ModuleEmitter.Unsupported("odd timestep embedding widths");
        var half = proj.NumChannels / 2;
        using var exponent = Tensors.Arange(0, half, 1, DType.Float32) * -Math.Log(proj.MaxPeriod);
        using var scaled = exponent / (half - proj.DownscaleFreqShift);
        using var frequencies = scaled.Exp() * proj.Scale;
        using var row = frequencies.Unsqueeze(0);
        var arguments = g.Op("Mul", [g.Op("Unsqueeze", [t, g.Ints(1)]), g.Constant(row, "frequencies")]);
        string[] parts = [g.Op("Sin", [arguments]), g.Op("Cos", [arguments])];
        return g.Op("Concat", proj.FlipSinToCos ? [parts[1], parts[0]] : parts, ("axis", -1L));
    }

    private static string ToGraphDType(ModuleEmitter e, string x) =>
        e.DType == DType.Float32 ? x : e.Graph.Op("Cast", [x], ("to", (long)OnnxGraph.ElementType(e.DType)));

    // TimestepEmbedding: linear_1, act, linear_2.
    private static string Mlp(ModuleEmitter e, string prefix, TimestepEmbedding embedding, string x)
    {
        if (embedding.CondProj is not null || ModuleEmitter.OptionalChild(embedding, "post_act") is not null)
            throw ModuleEmitter.Unsupported("time embeddings with cond_proj or post_act");
        x = e.Linear(prefix + ".linear_1", embedding.Linear1, x);
        if (ModuleEmitter.OptionalChild(embedding, "act") is { } act) x = e.Activation(act, x);
        return e.Linear(prefix + ".linear_2", embedding.Linear2, x);
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

using System.Text.RegularExpressions;

namespace LatentDiffusion.Pipeline.Checkpoints;

/// <summary>How a tensor of the original checkpoint becomes a diffusers tensor.</summary>
public enum TensorTransform
{
    /// <summary>Copied as is.</summary>
    None,
    /// <summary>A 1×1 conv weight [C, C, 1, 1] of the VAE's attention becomes a Linear weight [C, C].</summary>
    SqueezeConv1x1,
    /// <summary>The first, second or third third of OpenCLIP's fused in_proj (q, k, v).</summary>
    QueryThird,
    KeyThird,
    ValueThird,
    /// <summary>OpenCLIP's text_projection [width, dim] (used as x @ P) becomes a Linear weight [dim, width].</summary>
    Transpose,
}

/// <summary>A diffusers name for one original tensor.</summary>
public sealed record MappedKey(string Component, string Name, TensorTransform Transform = TensorTransform.None);

/// <summary>
/// Renames the tensors of an original (CompVis/Stability "LDM") Stable Diffusion checkpoint —
/// model.diffusion_model.*, first_stage_model.*, cond_stage_model.* — to the diffusers names of
/// the unet/, vae/ and text_encoder/ components. The layout facts follow the LDM modules:
/// input_blocks/middle_block/output_blocks of TimestepEmbedSequential, ResBlock's
/// in_layers/emb_layers/out_layers, the VAE's down/mid/up with block_N and attn_1, and OpenCLIP's
/// resblocks with a fused in_proj.
/// </summary>
public sealed partial class LdmKeyMapping
{
    public const string UNetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string ClipPrefix = "cond_stage_model.transformer.";
    public const string OpenClipPrefix = "cond_stage_model.model.";
    /// <summary>SDXL base: CLIP ViT-L/14 (transformers layout) and OpenCLIP ViT-bigG/14 (OpenCLIP layout) in the conditioner.</summary>
    public const string XlClipPrefix = "conditioner.embedders.0.transformer.";
    public const string XlOpenClipPrefix = "conditioner.embedders.1.model.";
    /// <summary>SDXL refiner: OpenCLIP ViT-bigG/14 is the first embedder.</summary>
    public const string XlRefinerOpenClipPrefix = "conditioner.embedders.0.model.";
    /// <summary>The keys diffusers' infer_diffusers_model_type looks for ("xl_base", "xl_refiner").</summary>
    public const string XlBaseProbe = XlOpenClipPrefix + "transformer.resblocks.9.mlp.c_proj.bias";
    public const string XlRefinerProbe = XlRefinerOpenClipPrefix + "transformer.resblocks.9.mlp.c_proj.bias";

    private readonly int unetLayersPerBlock;
    private readonly int vaeBlockCount;
    private readonly HashSet<int> inputBlocksWithAttention;

    /// <param name="unetLayersPerBlock">ResBlocks per U-Net level (2 in SD 1.x/2.x).</param>
    /// <param name="vaeBlockCount">Resolution levels of the VAE (4 in SD), needed because the decoder's up.N counts backwards.</param>
    /// <param name="inputBlocksWithAttention">Indices i of input_blocks.i that hold a spatial transformer.</param>
    public LdmKeyMapping(int unetLayersPerBlock, int vaeBlockCount, IEnumerable<int> inputBlocksWithAttention)
    {
        this.unetLayersPerBlock = unetLayersPerBlock;
        this.vaeBlockCount = vaeBlockCount;
        this.inputBlocksWithAttention = [.. inputBlocksWithAttention];
    }

    /// <summary>Reads the layout numbers from the checkpoint's own key names.</summary>
    public static LdmKeyMapping Infer(IEnumerable<string> keys)
    {
        var list = keys.ToList();
        int? firstDownsampler = null;
        var attention = new HashSet<int>();
        var vaeLevels = new HashSet<int>();
        foreach (var key in list)
        {
            var m = InputBlock().Match(key);
            if (m.Success)
            {
                var i = int.Parse(m.Groups[1].Value);
                var rest = m.Groups[2].Value;
                if (rest.StartsWith("0.op.", StringComparison.Ordinal) && (firstDownsampler is null || i < firstDownsampler)) firstDownsampler = i;
                if (rest.StartsWith("1.", StringComparison.Ordinal)) attention.Add(i);
            }
            var v = VaeEncoderLevel().Match(key);
            if (v.Success) vaeLevels.Add(int.Parse(v.Groups[1].Value));
        }
        if (firstDownsampler is null)
            throw new InvalidDataException("not a Stable Diffusion checkpoint: no model.diffusion_model.input_blocks.N.0.op downsampler");
        return new LdmKeyMapping(firstDownsampler.Value - 1, vaeLevels.Count, attention);
    }

    /// <summary>The diffusers component and name of an original key, or null for tensors diffusers drops.</summary>
    public MappedKey? Map(string key)
    {
        if (key.StartsWith(UNetPrefix, StringComparison.Ordinal)) return MapUNet(key[UNetPrefix.Length..]);
        if (key.StartsWith(VaePrefix, StringComparison.Ordinal)) return MapVae(key[VaePrefix.Length..]);
        if (key.StartsWith(ClipPrefix, StringComparison.Ordinal)) return MapClip(key[ClipPrefix.Length..]);
        if (key.StartsWith(OpenClipPrefix, StringComparison.Ordinal)) return MapOpenClip(key[OpenClipPrefix.Length..], OpenClipPrefix, "text_encoder");
        // SDXL: the base's two encoders become text_encoder/ and text_encoder_2/; the refiner's one, text_encoder_2/ (as diffusers names them).
        if (key.StartsWith(XlClipPrefix, StringComparison.Ordinal)) return MapClip(key[XlClipPrefix.Length..]);
        if (key.StartsWith(XlOpenClipPrefix, StringComparison.Ordinal)) return MapOpenClip(key[XlOpenClipPrefix.Length..], XlOpenClipPrefix, "text_encoder_2");
        if (key.StartsWith(XlRefinerOpenClipPrefix, StringComparison.Ordinal))
            return MapOpenClip(key[XlRefinerOpenClipPrefix.Length..], XlRefinerOpenClipPrefix, "text_encoder_2");
        return null;
    }

    // ---- U-Net ----

    private MappedKey? MapUNet(string key)
    {
        string? name = key switch
        {
            _ when key.StartsWith("time_embed.0.", StringComparison.Ordinal) => "time_embedding.linear_1." + key["time_embed.0.".Length..],
            _ when key.StartsWith("time_embed.2.", StringComparison.Ordinal) => "time_embedding.linear_2." + key["time_embed.2.".Length..],
            // SDXL's "text_time" addition embedding (sgm's label_emb: Sequential(Sequential(Linear, SiLU, Linear)))
            _ when key.StartsWith("label_emb.0.0.", StringComparison.Ordinal) => "add_embedding.linear_1." + key["label_emb.0.0.".Length..],
            _ when key.StartsWith("label_emb.0.2.", StringComparison.Ordinal) => "add_embedding.linear_2." + key["label_emb.0.2.".Length..],
            _ when key.StartsWith("input_blocks.0.0.", StringComparison.Ordinal) => "conv_in." + key["input_blocks.0.0.".Length..],
            _ when key.StartsWith("out.0.", StringComparison.Ordinal) => "conv_norm_out." + key["out.0.".Length..],
            _ when key.StartsWith("out.2.", StringComparison.Ordinal) => "conv_out." + key["out.2.".Length..],
            _ => null,
        };
        if (name is not null) return new MappedKey("unet", name);

        var m = InputBlockLocal().Match(key);
        if (m.Success)
        {
            int i = int.Parse(m.Groups[1].Value), part = int.Parse(m.Groups[2].Value);
            var rest = m.Groups[3].Value;
            int block = (i - 1) / (unetLayersPerBlock + 1), layer = (i - 1) % (unetLayersPerBlock + 1);
            if (layer == unetLayersPerBlock)
                return new MappedKey("unet", $"down_blocks.{block}.downsamplers.0.conv." + rest["op.".Length..]);
            return part == 0
                ? new MappedKey("unet", $"down_blocks.{block}.resnets.{layer}." + ResBlock(rest))
                : new MappedKey("unet", $"down_blocks.{block}.attentions.{layer}." + rest);
        }

        m = MiddleBlock().Match(key);
        if (m.Success)
        {
            var rest = m.Groups[2].Value;
            return m.Groups[1].Value switch
            {
                "0" => new MappedKey("unet", "mid_block.resnets.0." + ResBlock(rest)),
                "1" => new MappedKey("unet", "mid_block.attentions.0." + rest),
                _ => new MappedKey("unet", "mid_block.resnets.1." + ResBlock(rest)),
            };
        }

        m = OutputBlock().Match(key);
        if (m.Success)
        {
            int i = int.Parse(m.Groups[1].Value), part = int.Parse(m.Groups[2].Value);
            var rest = m.Groups[3].Value;
            int block = i / (unetLayersPerBlock + 1), layer = i % (unetLayersPerBlock + 1);
            if (part == 0) return new MappedKey("unet", $"up_blocks.{block}.resnets.{layer}." + ResBlock(rest));
            // Part 1 is the spatial transformer, or the upsampler's conv when the level has no attention; part 2 is always the upsampler.
            if (rest.StartsWith("conv.", StringComparison.Ordinal)) return new MappedKey("unet", $"up_blocks.{block}.upsamplers.0." + rest);
            return new MappedKey("unet", $"up_blocks.{block}.attentions.{layer}." + rest);
        }
        throw new InvalidDataException($"unknown U-Net tensor '{UNetPrefix}{key}'");
    }

    private static string ResBlock(string rest)
    {
        foreach (var (from, to) in ResBlockNames)
            if (rest.StartsWith(from, StringComparison.Ordinal)) return to + rest[from.Length..];
        throw new InvalidDataException($"unknown ResBlock tensor '{rest}'");
    }

    private static readonly (string From, string To)[] ResBlockNames =
    [
        ("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."),
    ];

    // ---- VAE ----

    private MappedKey? MapVae(string key)
    {
        var m = VaeLevel().Match(key);
        if (m.Success)
        {
            var side = m.Groups[1].Value;
            var level = int.Parse(m.Groups[3].Value);
            // The LDM decoder counts up.N from the lowest resolution; diffusers' up_blocks from the highest.
            var index = side == "encoder" ? level : vaeBlockCount - 1 - level;
            var blocks = side == "encoder" ? "down_blocks" : "up_blocks";
            var rest = m.Groups[4].Value;
            if (rest.StartsWith("block.", StringComparison.Ordinal))
            {
                var dot = rest.IndexOf('.', "block.".Length);
                return new MappedKey("vae", $"{side}.{blocks}.{index}.resnets.{rest["block.".Length..dot]}." + VaeResnet(rest[(dot + 1)..]));
            }
            var sampler = side == "encoder" ? "downsamplers" : "upsamplers";
            var prefix = side == "encoder" ? "downsample." : "upsample.";
            if (rest.StartsWith(prefix, StringComparison.Ordinal)) return new MappedKey("vae", $"{side}.{blocks}.{index}.{sampler}.0." + rest[prefix.Length..]);
            throw new InvalidDataException($"unknown VAE tensor '{VaePrefix}{key}'");
        }

        m = VaeMid().Match(key);
        if (m.Success)
        {
            var side = m.Groups[1].Value;
            var rest = m.Groups[3].Value;
            return m.Groups[2].Value switch
            {
                "block_1" => new MappedKey("vae", $"{side}.mid_block.resnets.0." + VaeResnet(rest)),
                "block_2" => new MappedKey("vae", $"{side}.mid_block.resnets.1." + VaeResnet(rest)),
                _ => VaeAttention(side, rest),
            };
        }

        foreach (var side in new[] { "encoder.", "decoder." })
        {
            if (!key.StartsWith(side, StringComparison.Ordinal)) continue;
            var rest = key[side.Length..];
            if (rest.StartsWith("norm_out.", StringComparison.Ordinal)) return new MappedKey("vae", side + "conv_norm_out." + rest["norm_out.".Length..]);
            if (rest.StartsWith("conv_in.", StringComparison.Ordinal) || rest.StartsWith("conv_out.", StringComparison.Ordinal)) return new MappedKey("vae", key);
        }
        if (key.StartsWith("quant_conv.", StringComparison.Ordinal) || key.StartsWith("post_quant_conv.", StringComparison.Ordinal)) return new MappedKey("vae", key);
        // Training-only tensors some checkpoints carry (the LPIPS/discriminator loss) are not part of the model.
        if (key.StartsWith("loss.", StringComparison.Ordinal)) return null;
        throw new InvalidDataException($"unknown VAE tensor '{VaePrefix}{key}'");
    }

    private static string VaeResnet(string rest) =>
        rest.StartsWith("nin_shortcut.", StringComparison.Ordinal) ? "conv_shortcut." + rest["nin_shortcut.".Length..] : rest;

    private static MappedKey VaeAttention(string side, string rest)
    {
        var dot = rest.IndexOf('.');
        var (name, param) = (rest[..dot], rest[(dot + 1)..]);
        var target = name switch
        {
            "norm" => "group_norm",
            "q" => "to_q",
            "k" => "to_k",
            "v" => "to_v",
            "proj_out" => "to_out.0",
            _ => throw new InvalidDataException($"unknown VAE attention tensor '{rest}'"),
        };
        var transform = name != "norm" && param == "weight" ? TensorTransform.SqueezeConv1x1 : TensorTransform.None;
        return new MappedKey("vae", $"{side}.mid_block.attentions.0.{target}.{param}", transform);
    }

    // ---- text encoders ----

    private static MappedKey? MapClip(string key)
    {
        // Checkpoints saved with old transformers lack the text_model. level.
        var name = key.StartsWith("text_model.", StringComparison.Ordinal) ? key : "text_model." + key;
        return new MappedKey("text_encoder", name);
    }

    /// <param name="component">text_encoder (SD 2.x, whose text_projection diffusers drops) or text_encoder_2 (SDXL, a CLIPTextModelWithProjection).</param>
    private static MappedKey? MapOpenClip(string key, string prefix, string component)
    {
        switch (key)
        {
            case "token_embedding.weight": return new MappedKey(component, "text_model.embeddings.token_embedding.weight");
            case "positional_embedding": return new MappedKey(component, "text_model.embeddings.position_embedding.weight");
            case "ln_final.weight": return new MappedKey(component, "text_model.final_layer_norm.weight");
            case "ln_final.bias": return new MappedKey(component, "text_model.final_layer_norm.bias");
            case "text_projection": return component == "text_encoder" ? null : new MappedKey(component, "text_projection.weight", TensorTransform.Transpose);
            case "logit_scale" or "attn_mask": return null;
        }
        var m = OpenClipLayer().Match(key);
        if (!m.Success) throw new InvalidDataException($"unknown OpenCLIP tensor '{prefix}{key}'");
        var layer = $"text_model.encoder.layers.{m.Groups[1].Value}.";
        var rest = m.Groups[2].Value;
        foreach (var (from, to) in OpenClipNames)
            if (rest.StartsWith(from, StringComparison.Ordinal)) return new MappedKey(component, layer + to + rest[from.Length..]);
        var fused = rest switch
        {
            "attn.in_proj_weight" => "weight",
            "attn.in_proj_bias" => "bias",
            _ => throw new InvalidDataException($"unknown OpenCLIP tensor '{prefix}{key}'"),
        };
        // The caller asks for each third separately through MapOpenClipFused.
        return new MappedKey(component, layer + "self_attn.q_proj." + fused, TensorTransform.QueryThird);
    }

    /// <summary>OpenCLIP fuses q, k and v in one in_proj tensor; diffusers keeps three Linear layers.</summary>
    public static IEnumerable<MappedKey> Expand(MappedKey mapped)
    {
        if (mapped.Transform != TensorTransform.QueryThird)
        {
            yield return mapped;
            yield break;
        }
        yield return mapped;
        yield return mapped with { Name = mapped.Name.Replace(".q_proj.", ".k_proj."), Transform = TensorTransform.KeyThird };
        yield return mapped with { Name = mapped.Name.Replace(".q_proj.", ".v_proj."), Transform = TensorTransform.ValueThird };
    }

    private static readonly (string From, string To)[] OpenClipNames =
    [
        ("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."),
        ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2."),
    ];

    [GeneratedRegex(@"^model\.diffusion_model\.input_blocks\.(\d+)\.(.*)$")] private static partial Regex InputBlock();
    [GeneratedRegex(@"^input_blocks\.(\d+)\.(\d+)\.(.*)$")] private static partial Regex InputBlockLocal();
    [GeneratedRegex(@"^middle_block\.(\d+)\.(.*)$")] private static partial Regex MiddleBlock();
    [GeneratedRegex(@"^output_blocks\.(\d+)\.(\d+)\.(.*)$")] private static partial Regex OutputBlock();
    [GeneratedRegex(@"^first_stage_model\.encoder\.down\.(\d+)\.")] private static partial Regex VaeEncoderLevel();
    [GeneratedRegex(@"^(encoder|decoder)\.(down|up)\.(\d+)\.(.*)$")] private static partial Regex VaeLevel();
    [GeneratedRegex(@"^(encoder|decoder)\.mid\.(block_1|block_2|attn_1)\.(.*)$")] private static partial Regex VaeMid();
    [GeneratedRegex(@"^transformer\.resblocks\.(\d+)\.(.*)$")] private static partial Regex OpenClipLayer();
}

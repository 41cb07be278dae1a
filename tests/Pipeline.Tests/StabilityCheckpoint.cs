using System.Text.RegularExpressions;
using LatentDiffusion.LatentUNet;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.Tests.Common;

/// <summary>
/// A diffusers SDXL folder written as one file in Stability's single-file layout (sgm's module names): the inverse of
/// diffusers' single-file conversion, written independently of the loader's LdmKeyMapping so that a test of one checks the other.
/// </summary>
internal static partial class StabilityCheckpoint
{
    /// <summary>Writes the folder's weights under Stability's names (the base's two embedders, or the refiner's one).</summary>
    public static void Write(string folder, string file, bool refiner)
    {
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            var unetConfig = UNet2DConditionModelConfig.Load(Path.Combine(folder, "unet", "config.json"));
            var layers = unetConfig.LayersPerBlock.Value;
            var attentionLevels = unetConfig.DownBlockTypes.Select(t => t.StartsWith("CrossAttn", StringComparison.Ordinal)).ToArray();
            foreach (var (name, t) in Load(folder, "unet/diffusion_pytorch_model.safetensors"))
                tensors["model.diffusion_model." + UNetName(name, layers, attentionLevels)] = t;
            var vaeLevels = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "vae", "config.json")))!["down_block_types"]!.AsArray().Count;
            foreach (var (name, t) in Load(folder, "vae/diffusion_pytorch_model.safetensors"))
            {
                var (key, value) = VaeName(name, t, vaeLevels);
                tensors["first_stage_model." + key] = value;
            }
            if (!refiner)
                foreach (var (name, t) in Load(folder, "text_encoder/model.safetensors"))
                    tensors["conditioner.embedders.0.transformer." + name] = t;
            var openClip = refiner ? "conditioner.embedders.0.model." : "conditioner.embedders.1.model.";
            foreach (var (key, value) in OpenClip(Load(folder, "text_encoder_2/model.safetensors")))
                tensors[openClip + key] = value;
            SafeTensorsFile.Save(file, tensors);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    private static Dictionary<string, Tensor> Load(string folder, string relative) => SafeTensorsFile.LoadFile(Path.Combine(folder, relative));

    private static readonly (string Diffusers, string Sgm)[] Resnet =
    [
        ("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
        ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection."),
    ];

    private static string ResnetName(string rest) => Resnet.Where(p => rest.StartsWith(p.Diffusers, StringComparison.Ordinal))
        .Select(p => p.Sgm + rest[p.Diffusers.Length..]).Single();

    private static string UNetName(string name, int layers, bool[] attention)
    {
        foreach (var (from, to) in new[] { ("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
            ("add_embedding.linear_1.", "label_emb.0.0."), ("add_embedding.linear_2.", "label_emb.0.2."), ("conv_in.", "input_blocks.0.0."),
            ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."), ("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
            ("mid_block.resnets.1.", "middle_block.2.") })
        {
            if (!name.StartsWith(from, StringComparison.Ordinal)) continue;
            var rest = name[from.Length..];
            return to + (from.Contains("resnets", StringComparison.Ordinal) ? ResnetName(rest) : rest);
        }
        var m = BlockPart().Match(name);
        Assert.True(m.Success, name);
        var (side, block, kind, index, rest2) = (m.Groups[1].Value, int.Parse(m.Groups[2].Value), m.Groups[3].Value, int.Parse(m.Groups[4].Value), m.Groups[5].Value);
        if (side == "down")
        {
            var i = 1 + block * (layers + 1);
            return kind switch
            {
                "resnets" => $"input_blocks.{i + index}.0.{ResnetName(rest2)}",
                "attentions" => $"input_blocks.{i + index}.1.{rest2}",
                _ => $"input_blocks.{i + layers}.0.op.{rest2["conv.".Length..]}",
            };
        }
        var o = block * (layers + 1);
        var mirroredHasAttention = attention[attention.Length - 1 - block];
        return kind switch
        {
            "resnets" => $"output_blocks.{o + index}.0.{ResnetName(rest2)}",
            "attentions" => $"output_blocks.{o + index}.1.{rest2}",
            _ => $"output_blocks.{o + layers}.{(mirroredHasAttention ? 2 : 1)}.{rest2}",
        };
    }

    private static (string, Tensor) VaeName(string name, Tensor t, int levels)
    {
        foreach (var side in new[] { "encoder.", "decoder." })
        {
            if (!name.StartsWith(side, StringComparison.Ordinal)) continue;
            var rest = name[side.Length..];
            var m = VaeBlock().Match(rest);
            if (m.Success)
            {
                var level = int.Parse(m.Groups[2].Value);
                var sgmLevel = side == "encoder." ? level : levels - 1 - level;
                var inner = m.Groups[4].Value;
                var sgm = m.Groups[3].Value == "resnets"
                    ? $"{(side == "encoder." ? "down" : "up")}.{sgmLevel}.block.{inner.Replace("conv_shortcut.", "nin_shortcut.")}"
                    : $"{(side == "encoder." ? "down" : "up")}.{sgmLevel}.{(side == "encoder." ? "downsample" : "upsample")}.{inner[2..]}";
                return (side + sgm, t);
            }
            if (rest.StartsWith("mid_block.resnets.0.", StringComparison.Ordinal)) return (side + "mid.block_1." + rest["mid_block.resnets.0.".Length..].Replace("conv_shortcut.", "nin_shortcut."), t);
            if (rest.StartsWith("mid_block.resnets.1.", StringComparison.Ordinal)) return (side + "mid.block_2." + rest["mid_block.resnets.1.".Length..].Replace("conv_shortcut.", "nin_shortcut."), t);
            if (rest.StartsWith("mid_block.attentions.0.", StringComparison.Ordinal))
            {
                var a = rest["mid_block.attentions.0.".Length..];
                var (module, param) = (a[..a.LastIndexOf('.')], a[(a.LastIndexOf('.') + 1)..]);
                var sgm = module switch { "group_norm" => "norm", "to_q" => "q", "to_k" => "k", "to_v" => "v", _ => "proj_out" };
                // sgm's attention projections are 1×1 convolutions
                var value = param == "weight" && sgm != "norm" ? t.View(t.Size(0), t.Size(1), 1, 1) : t;
                return (side + $"mid.attn_1.{sgm}.{param}", value);
            }
            if (rest.StartsWith("conv_norm_out.", StringComparison.Ordinal)) return (side + "norm_out." + rest["conv_norm_out.".Length..], t);
            return (name, t); // conv_in, conv_out
        }
        return (name, t); // quant_conv, post_quant_conv
    }

    private static IEnumerable<(string, Tensor)> OpenClip(Dictionary<string, Tensor> weights)
    {
        var fused = new SortedDictionary<string, Tensor[]>(StringComparer.Ordinal);
        foreach (var (name, t) in weights)
        {
            switch (name)
            {
                case "text_model.embeddings.token_embedding.weight": yield return ("token_embedding.weight", t); continue;
                case "text_model.embeddings.position_embedding.weight": yield return ("positional_embedding", t); continue;
                case "text_model.final_layer_norm.weight": yield return ("ln_final.weight", t); continue;
                case "text_model.final_layer_norm.bias": yield return ("ln_final.bias", t); continue;
                case "text_projection.weight": yield return ("text_projection", t.Transpose(0, 1).Contiguous()); continue;
            }
            var m = ClipLayer().Match(name);
            Assert.True(m.Success, name);
            var (layer, module, param) = (m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value);
            var prefix = $"transformer.resblocks.{layer}.";
            if (module is "self_attn.q_proj" or "self_attn.k_proj" or "self_attn.v_proj")
            {
                var key = prefix + (param == "weight" ? "attn.in_proj_weight" : "attn.in_proj_bias");
                if (!fused.TryGetValue(key, out var parts)) fused[key] = parts = new Tensor[3];
                parts[module[^6] switch { 'q' => 0, 'k' => 1, _ => 2 }] = t;
                continue;
            }
            var sgm = module switch
            {
                "layer_norm1" => "ln_1", "layer_norm2" => "ln_2", "self_attn.out_proj" => "attn.out_proj", "mlp.fc1" => "mlp.c_fc", _ => "mlp.c_proj",
            };
            yield return (prefix + sgm + "." + param, t);
        }
        foreach (var (key, parts) in fused) yield return (key, Tensor.Cat(parts, 0));
    }

    [GeneratedRegex(@"^(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)$")] private static partial Regex BlockPart();
    [GeneratedRegex(@"^(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(.*)$")] private static partial Regex VaeBlock();
    [GeneratedRegex(@"^text_model\.encoder\.layers\.(\d+)\.(.*)\.(weight|bias)$")] private static partial Regex ClipLayer();
}

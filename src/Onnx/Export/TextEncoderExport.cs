using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx.Export;

/// <summary>
/// A <see cref="ClipTextModel"/> as optimum's text encoder graph: input_ids int32 [batch, sequence] → last_hidden_state
/// [batch, sequence, width] (through the final layer norm), pooler_output [batch, width] (the state at the end-of-text
/// token) or, for a <see cref="ClipTextModelWithProjection"/> (SDXL's text_encoder_2), text_embeds [batch, projection_dim]
/// (the pooled state through text_projection), and hidden_states.0 … hidden_states.L (transformers' hidden_states: the
/// embeddings, then each layer's output, without the final layer norm: SDXL conditions on hidden_states.(L − 1), and
/// Stable Diffusion's clip skip k on hidden_states.(L + 1 − k) through the final layer norm, whose weights
/// <see cref="OnnxTextEncoder"/> reads from the file). Batch and sequence (up to max_position_embeddings) are dynamic.
/// </summary>
public static class TextEncoderExport
{
    public static OnnxGraph Emit(ClipTextModel model, DType dtype = DType.Float32) => ModuleEmitter.Build("text_encoder", dtype, e => EmitInto(e, model));

    private static void EmitInto(ModuleEmitter e, ClipTextModel model)
    {
        var g = e.Graph;
        var config = model.Config;
        var t = model.TextModel;
        long width = config.HiddenSize;
        var ids = g.Input("input_ids", DType.Int32, "batch", "sequence");
        var length = g.Op("Slice", [g.Op("Shape", [ids]), g.Ints(1), g.Ints(2)]);

        // embeddings: token + position (the first `sequence` rows)
        var tokens = g.Op("Gather", [e.Weight("text_model.embeddings.token_embedding.weight", t.Embeddings.TokenEmbedding.Weight), ids], ("axis", 0L));
        var positions = g.Op("Slice", [e.Weight("text_model.embeddings.position_embedding.weight", t.Embeddings.PositionEmbedding.Weight), g.Ints(0), length, g.Ints(0)]);
        var h = g.Op("Add", [tokens, positions]);

        // the causal mask at full length, cut to the sequence
        using var fullMask = ClipTextModel.CausalMask(config.MaxPositionEmbeddings, e.DType, Device.CPU);
        var mask = g.Op("Slice", [g.Constant(fullMask, "causal_mask"), g.Ints(0, 0), g.Op("Concat", [length, length], ("axis", 0L)), g.Ints(0, 1)]);

        var states = new List<string>(); // transformers' hidden_states: the embeddings, then each layer's output
        for (int i = 0; i < t.Encoder.Layers.Count; i++)
        {
            states.Add(h);
            var layer = t.Encoder.Layers[i];
            var prefix = $"text_model.encoder.layers.{i}";
            var a = layer.SelfAttn;
            var x = e.LayerNorm(prefix + ".layer_norm1", layer.LayerNorm1, h);
            // transformers scales the queries before the product
            var q = g.Op("Mul", [e.Linear(prefix + ".self_attn.q_proj", a.QProj, x), e.Scalar(a.Scale)]);
            var attended = e.MultiHead(q, e.Linear(prefix + ".self_attn.k_proj", a.KProj, x), e.Linear(prefix + ".self_attn.v_proj", a.VProj, x), a.Heads, a.HeadDim, 1, mask);
            h = g.Op("Add", [h, e.Linear(prefix + ".self_attn.out_proj", a.OutProj, attended)]);
            var m = e.Linear(prefix + ".mlp.fc1", layer.Mlp.Fc1, e.LayerNorm(prefix + ".layer_norm2", layer.LayerNorm2, h));
            m = layer.Mlp.HiddenAct switch
            {
                "quick_gelu" => g.Op("Mul", [m, g.Op("Sigmoid", [g.Op("Mul", [m, e.Scalar(1.702)])])]),
                "gelu" => e.Gelu(m),
                _ => throw ModuleEmitter.Unsupported($"the CLIP activation {layer.Mlp.HiddenAct}"),
            };
            h = g.Op("Add", [h, e.Linear(prefix + ".mlp.fc2", layer.Mlp.Fc2, m)]);
        }
        states.Add(h);
        var last = e.LayerNorm("text_model.final_layer_norm", t.FinalLayerNorm, h);
        var projection = (model as ClipTextModelWithProjection)?.TextProjection;
        // optimum's order: CLIPTextModelWithProjection's text_embeds first, then last_hidden_state (CLIPTextModel's pooler_output after it)
        if (projection is not null) g.Output(e.Linear("text_projection", projection, Pooled(e, config, ids, length, last, width)), "text_embeds", e.DType, "batch", (long)projection.OutFeatures);
        g.Output(last, "last_hidden_state", e.DType, "batch", "sequence", width);
        if (projection is null) g.Output(Pooled(e, config, ids, length, last, width), "pooler_output", e.DType, "batch", width);
        var layers = t.Encoder.Layers.Count;
        for (int i = 0; i <= layers; i++) g.Output(states[i], OnnxTextEncoder.HiddenStateOutput(i), e.DType, "batch", "sequence", width);
    }

    // transformers' pooler: the end-of-text position of each row (the largest id for legacy eos_token_id 2, else the first eos)
    private static string Pooled(ModuleEmitter e, ClipTextConfig config, string ids, string length, string last, long width)
    {
        var g = e.Graph;
        var position = config.EosTokenId == 2
            ? g.Op("ArgMax", [ids], ("axis", -1L), ("keepdims", 0L))
            : g.Op("ArgMax", [g.Op("Cast", [g.Op("Equal", [ids, IntScalar(g, config.EosTokenId!.Value)])], ("to", 6L))], ("axis", -1L), ("keepdims", 0L));
        var batch = g.Op("Squeeze", [g.Op("Slice", [g.Op("Shape", [ids]), g.Ints(0), g.Ints(1)])]);
        var rows = g.Op("Range", [g.Int64Scalar(0), batch, g.Int64Scalar(1)]);
        var flat = g.Op("Add", [g.Op("Mul", [rows, g.Op("Squeeze", [length])]), position]);
        return g.Op("Gather", [g.Op("Reshape", [last, g.Ints(-1, width)]), flat], ("axis", 0L));
    }

    private static string IntScalar(OnnxGraph g, long value)
    {
        using var t = Tensors.Scalar(value, DType.Int32);
        return g.Constant(t, "eos");
    }
}

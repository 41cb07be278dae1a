using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Onnx.Export;

/// <summary>
/// Writes our modules into an <see cref="OnnxGraph"/>: each method is the ONNX form of one module's Forward (the same
/// math, step by step), with the module's parameters as initializers under their state-dict names. Values are graph
/// value names; shapes stay dynamic (Reshape's 0 copies a dimension, −1 infers one). A module variant without an
/// ONNX form here is one line naming it.
/// </summary>
internal sealed class ModuleEmitter(OnnxGraph graph, DType dtype)
{
    public OnnxGraph Graph { get; } = graph;

    /// <summary>The dtype the graph computes in (weights converted to it; float32 or float16).</summary>
    public DType DType { get; } = dtype;

    /// <summary>A new graph <paramref name="name"/> written by <paramref name="body"/>; on failure nothing is kept.</summary>
    public static OnnxGraph Build(string name, DType dtype, Action<ModuleEmitter> body)
    {
        if (dtype is not (DType.Float32 or DType.Float16)) throw new ArgumentException($"the ONNX export writes float32 or float16, not {dtype}");
        var graph = new OnnxGraph(name);
        try
        {
            body(new ModuleEmitter(graph, dtype));
            return graph;
        }
        catch
        {
            graph.Dispose();
            throw;
        }
    }

    public static Module Child(Module m, string name) =>
        m.NamedChildren().FirstOrDefault(c => c.Name == name).Module ?? throw new InvalidOperationException($"{m.GetType().Name} has no child '{name}'");

    public static Module? OptionalChild(Module m, string name) => m.NamedChildren().FirstOrDefault(c => c.Name == name).Module;

    public static NotSupportedException Unsupported(string what) => new($"the ONNX exporter does not support {what} yet");

    private readonly HashSet<string> weights = [];

    /// <summary>A parameter as an initializer in the graph's dtype, once: a module emitted twice shares its weights.</summary>
    public string Weight(string name, Tensor t)
    {
        if (!weights.Add(name)) return name;
        using var converted = t.To(DType);
        return Graph.Initializer(name, converted);
    }

    public string Scalar(double value) => Graph.Scalar(value, DType);

    public string Conv2d(string prefix, Conv2d conv, string x)
    {
        if (conv.Dilation != (1, 1)) throw Unsupported("dilated convolutions");
        string[] inputs = conv.Bias is { } b ? [x, Weight(prefix + ".weight", conv.Weight), Weight(prefix + ".bias", b)] : [x, Weight(prefix + ".weight", conv.Weight)];
        return Graph.Op("Conv", inputs,
            ("kernel_shape", new long[] { conv.KernelSize.H, conv.KernelSize.W }),
            ("strides", new long[] { conv.Stride.H, conv.Stride.W }),
            ("pads", new long[] { conv.Padding.H, conv.Padding.W, conv.Padding.H, conv.Padding.W }),
            ("group", (long)conv.Groups));
    }

    /// <summary>
    /// x Wᵀ + b over the last axis, any leading axes. The weight is stored as the module holds it (the graph shares its memory
    /// rather than keeping a transposed copy, which for SDXL's U-Net would be 8 GB more while exporting); ONNX Runtime folds
    /// the constant Transpose once when it loads the graph.
    /// </summary>
    public string Linear(string prefix, Linear linear, string x)
    {
        var transposed = Graph.Op("Transpose", [Weight(prefix + ".weight", linear.Weight)], ("perm", new long[] { 1, 0 }));
        var y = Graph.Op("MatMul", [x, transposed]);
        return linear.Bias is { } b ? Graph.Op("Add", [y, Weight(prefix + ".bias", b)]) : y;
    }

    /// <summary>
    /// GroupNorm over [N, C, …] as PyTorch exports it for opset 17: InstanceNormalization of the [N, G, −1] view (statistics
    /// per group), back to the input's shape, then the per-channel affine.
    /// </summary>
    public string GroupNorm(string prefix, GroupNorm norm, string x, int rank = 4)
    {
        var grouped = Graph.Op("Reshape", [x, Graph.Ints(0, norm.NumGroups, -1)]);
        using var ones = Tensors.Ones([norm.NumGroups], DType);
        using var zeros = Tensors.Zeros([norm.NumGroups], DType);
        var normalized = Graph.Op("InstanceNormalization", [grouped, Graph.Constant(ones, "ones"), Graph.Constant(zeros, "zeros")], ("epsilon", norm.Eps));
        var y = Graph.Op("Reshape", [normalized, Graph.Op("Shape", [x])]);
        if (norm.Weight is null) return y;
        // [C] → [C, 1, 1] so that it broadcasts over [N, C, H, W] ([C, 1] over [N, C, L])
        long[] affine = [norm.NumChannels, .. Enumerable.Repeat(1L, rank - 2)];
        using var w = norm.Weight.Reshape(affine);
        using var b = norm.Bias!.Reshape(affine);
        return Graph.Op("Add", [Graph.Op("Mul", [y, Weight(prefix + ".weight", w)]), Weight(prefix + ".bias", b)]);
    }

    public string LayerNorm(string prefix, LayerNorm norm, string x)
    {
        if (norm.NormalizedShape.Length != 1 || norm.Weight is null) throw Unsupported("layer norms over several axes or without affine");
        return Graph.Op("LayerNormalization", [x, Weight(prefix + ".weight", norm.Weight), Weight(prefix + ".bias", norm.Bias!)], ("axis", -1L), ("epsilon", norm.Eps));
    }

    public string Activation(Module act, string x) => act switch
    {
        SiLU => Graph.Op("Mul", [x, Graph.Op("Sigmoid", [x])]),
        GELU { Approximate: "none" } => Gelu(x),
        ReLU => Graph.Op("Relu", [x]),
        Identity or Dropout => x,
        _ => throw Unsupported($"the activation {act.GetType().Name}"),
    };

    /// <summary>Exact GELU: ½ x (1 + erf(x / √2)) (ONNX has a Gelu operator only from opset 20).</summary>
    public string Gelu(string x)
    {
        var erf = Graph.Op("Erf", [Graph.Op("Div", [x, Scalar(Math.Sqrt(2))])]);
        return Graph.Op("Mul", [Graph.Op("Mul", [x, Graph.Op("Add", [erf, Scalar(1)])]), Scalar(0.5)]);
    }

    /// <summary>diffusers' Attention on tokens [N, L, C] (context [N, S, C'] or itself): softmax(q kᵀ · scale) v per head, then to_out.</summary>
    public string Attention(string prefix, Attention attn, string x, string? context)
    {
        if (OptionalChild(attn, "group_norm") is not null || attn.ResidualConnection || attn.RescaleOutputFactor != 1)
            throw Unsupported("token attention with group_norm, residual_connection or rescale_output_factor");
        context ??= x;
        var q = Linear(prefix + ".to_q", attn.ToQ, x);
        var attended = MultiHead(q, Linear(prefix + ".to_k", attn.ToK, context), Linear(prefix + ".to_v", attn.ToV, context), attn.Heads, attn.DimHead, attn.Scale, null);
        return Linear(prefix + ".to_out.0", attn.ToOut, attended);
    }

    /// <summary>
    /// diffusers' Attention on a feature map [N, C, H, W] (the VAE's mid block): tokens [N, H·W, C], the optional group norm,
    /// self-attention, back to the map, the residual and the output rescale.
    /// </summary>
    public string SpatialAttention(string prefix, Attention attn, string x)
    {
        var shape = Graph.Op("Shape", [x]);
        var channelsFirst = Graph.Op("Reshape", [x, Graph.Ints(0, 0, -1)]); // [N, C, H·W]
        if (OptionalChild(attn, "group_norm") is GroupNorm norm) channelsFirst = GroupNorm(prefix + ".group_norm", norm, channelsFirst, rank: 3);
        var tokens = Graph.Op("Transpose", [channelsFirst], ("perm", new long[] { 0, 2, 1 }));
        var q = Linear(prefix + ".to_q", attn.ToQ, tokens);
        var attended = MultiHead(q, Linear(prefix + ".to_k", attn.ToK, tokens), Linear(prefix + ".to_v", attn.ToV, tokens), attn.Heads, attn.DimHead, attn.Scale, null);
        var output = Linear(prefix + ".to_out.0", attn.ToOut, attended);
        output = Graph.Op("Reshape", [Graph.Op("Transpose", [output], ("perm", new long[] { 0, 2, 1 })), shape]);
        if (attn.ResidualConnection) output = Graph.Op("Add", [output, x]);
        return attn.RescaleOutputFactor == 1 ? output : Graph.Op("Div", [output, Scalar(attn.RescaleOutputFactor)]);
    }

    /// <summary>
    /// softmax(q kᵀ · scale + mask) v over <paramref name="heads"/> heads of <paramref name="dimHead"/> channels: q [N, L, h·d],
    /// k and v [N, S, h·d] → [N, L, h·d]. The additive mask broadcasts over [N, h, L, S].
    /// </summary>
    public string MultiHead(string q, string k, string v, int heads, int dimHead, double scale, string? mask)
    {
        string Split(string t, long[] perm) => Graph.Op("Transpose", [Graph.Op("Reshape", [t, Graph.Ints(0, 0, heads, dimHead)])], ("perm", perm));
        var scores = Graph.Op("MatMul", [Split(q, [0, 2, 1, 3]), Split(k, [0, 2, 3, 1])]);
        if (scale != 1) scores = Graph.Op("Mul", [scores, Scalar(scale)]);
        if (mask is not null) scores = Graph.Op("Add", [scores, mask]);
        var o = Graph.Op("MatMul", [Graph.Op("Softmax", [scores], ("axis", -1L)), Split(v, [0, 2, 1, 3])]);
        return Graph.Op("Reshape", [Graph.Op("Transpose", [o], ("perm", new long[] { 0, 2, 1, 3 })), Graph.Ints(0, 0, (long)heads * dimHead)]);
    }

    public string BasicTransformerBlock(string prefix, BasicTransformerBlock block, string x, string context)
    {
        var attn1 = Attention(prefix + ".attn1", block.Attn1, LayerNorm(prefix + ".norm1", (LayerNorm)Child(block, "norm1"), x), block.OnlyCrossAttention ? context : null);
        x = Graph.Op("Add", [attn1, x]);
        if (block.Attn2 is { } attn2)
            x = Graph.Op("Add", [Attention(prefix + ".attn2", attn2, LayerNorm(prefix + ".norm2", (LayerNorm)Child(block, "norm2"), x), context), x]);
        var ff = Child(Child(block, "ff"), "net");
        var geglu = (GEGLU)Child(ff, "0");
        var projected = Linear(prefix + ".ff.net.0.proj", geglu.Proj, LayerNorm(prefix + ".norm3", (LayerNorm)Child(block, "norm3"), x));
        // GEGLU: the projection's first half gated by GELU of its second half
        var halves = Graph.Node("Split", [projected, Graph.Ints(geglu.Proj.OutFeatures / 2, geglu.Proj.OutFeatures / 2)], [Graph.Fresh("Split"), Graph.Fresh("Split")], ("axis", -1L));
        var gated = Graph.Op("Mul", [halves[0], Gelu(halves[1])]);
        return Graph.Op("Add", [Linear(prefix + ".ff.net.2", (Linear)Child(ff, "2"), gated), x]);
    }

    /// <summary>Transformer2DModel: group norm, projection to tokens [N, H·W, C], the blocks, back to [N, C, H, W], residual.</summary>
    public string Transformer2D(string prefix, Transformer2DModel t, string x, string context)
    {
        var shape = Graph.Op("Shape", [x]);
        var h = GroupNorm(prefix + ".norm", (GroupNorm)Child(t, "norm"), x);
        var projIn = Child(t, "proj_in");
        if (!t.UseLinearProjection) h = Conv2d(prefix + ".proj_in", (Conv2d)projIn, h);
        // [N, C, H, W] → [N, H·W, C]
        h = Graph.Op("Transpose", [Graph.Op("Reshape", [h, Graph.Ints(0, 0, -1)])], ("perm", new long[] { 0, 2, 1 }));
        if (t.UseLinearProjection) h = Linear(prefix + ".proj_in", (Linear)projIn, h);
        for (int i = 0; i < t.TransformerBlocks.Count; i++)
            h = BasicTransformerBlock($"{prefix}.transformer_blocks.{i}", t.TransformerBlocks[i], h, context);
        var projOut = Child(t, "proj_out");
        if (t.UseLinearProjection) h = Linear(prefix + ".proj_out", (Linear)projOut, h);
        // [N, H·W, C'] → [N, C', H, W]: H and W from the input's shape
        var spatial = Graph.Op("Slice", [shape, Graph.Ints(2), Graph.Ints(4)]);
        var back = Graph.Op("Concat", [Graph.Ints(0, -1), spatial], ("axis", 0L));
        h = Graph.Op("Reshape", [Graph.Op("Transpose", [h], ("perm", new long[] { 0, 2, 1 })), back]);
        if (!t.UseLinearProjection) h = Conv2d(prefix + ".proj_out", (Conv2d)projOut, h);
        return Graph.Op("Add", [h, x]);
    }

    public string Resnet(string prefix, ResnetBlock2D block, string x, string? temb)
    {
        if (block.TimeEmbeddingNorm != "default" || OptionalChild(block, "upsample") is not null || OptionalChild(block, "downsample") is not null)
            throw Unsupported("resnet blocks with scale_shift time norm or resampling inside");
        var act = Child(block, "nonlinearity");
        var h = Conv2d(prefix + ".conv1", (Conv2d)Child(block, "conv1"), Activation(act, GroupNorm(prefix + ".norm1", (GroupNorm)Child(block, "norm1"), x)));
        if (OptionalChild(block, "time_emb_proj") is Linear proj && temb is not null)
        {
            var t = Linear(prefix + ".time_emb_proj", proj, block.SkipTimeAct ? temb : Activation(act, temb));
            h = Graph.Op("Add", [h, Graph.Op("Unsqueeze", [t, Graph.Ints(2, 3)])]);
        }
        h = Activation(act, GroupNorm(prefix + ".norm2", (GroupNorm)Child(block, "norm2"), h));
        h = Conv2d(prefix + ".conv2", (Conv2d)Child(block, "conv2"), h);
        var shortcut = OptionalChild(block, "conv_shortcut") is Conv2d c ? Conv2d(prefix + ".conv_shortcut", c, x) : x;
        var output = Graph.Op("Add", [shortcut, h]);
        return block.OutputScaleFactor == 1 ? output : Graph.Op("Div", [output, Scalar(block.OutputScaleFactor)]);
    }

    public string Downsample(string prefix, Downsample2D down, string x)
    {
        if (OptionalChild(down, "conv") is not Conv2d conv) throw Unsupported("average-pool downsampling");
        if (down.Padding == 0) x = Graph.Op("Pad", [x, Graph.Ints(0, 0, 0, 0, 0, 0, 1, 1)]);
        return Conv2d(prefix + ".conv", conv, x);
    }

    /// <summary>
    /// Nearest-neighbour upsampling ×2, or to the spatial size of <paramref name="sizeOf"/> (the skip it meets in a U-Net, which
    /// is ×2 unless the input size was odd), then the conv.
    /// </summary>
    public string Upsample(string prefix, Upsample2D up, string x, string? sizeOf)
    {
        // PyTorch's "nearest": source index ⌊dst · in / out⌋
        (string, object)[] nearest = [("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor")];
        string y;
        if (sizeOf is null)
        {
            using var scales = Tensor.From([1f, 1f, 2f, 2f], 4);
            y = Graph.Op("Resize", [x, "", Graph.Constant(scales, "scales")], nearest);
        }
        else
        {
            var sizes = Graph.Op("Concat", [Graph.Op("Slice", [Graph.Op("Shape", [x]), Graph.Ints(0), Graph.Ints(2)]), Graph.Op("Slice", [Graph.Op("Shape", [sizeOf]), Graph.Ints(2), Graph.Ints(4)])], ("axis", 0L));
            y = Graph.Op("Resize", [x, "", "", sizes], nearest);
        }
        return OptionalChild(up, "conv") is Conv2d conv ? Conv2d(prefix + ".conv", conv, y) : y;
    }
}

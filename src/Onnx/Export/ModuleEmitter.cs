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

    public static Module Child(Module m, string name) =>
        m.NamedChildren().FirstOrDefault(c => c.Name == name).Module ?? throw new InvalidOperationException($"{m.GetType().Name} has no child '{name}'");

    public static Module? OptionalChild(Module m, string name) => m.NamedChildren().FirstOrDefault(c => c.Name == name).Module;

    public static NotSupportedException Unsupported(string what) => new($"the ONNX exporter does not support {what} yet");

    private string Weight(string name, Tensor t)
    {
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

    /// <summary>x Wᵀ + b over the last axis, any leading axes (the transposed weight is stored).</summary>
    public string Linear(string prefix, Linear linear, string x)
    {
        using var transposed = linear.Weight.Transpose(0, 1);
        using var contiguous = transposed.Contiguous();
        var y = Graph.Op("MatMul", [x, Weight(prefix + ".weight", contiguous)]);
        return linear.Bias is { } b ? Graph.Op("Add", [y, Weight(prefix + ".bias", b)]) : y;
    }

    /// <summary>
    /// GroupNorm over [N, C, …] as PyTorch exports it for opset 17: InstanceNormalization of the [N, G, −1] view (statistics
    /// per group), back to the input's shape, then the per-channel affine.
    /// </summary>
    public string GroupNorm(string prefix, GroupNorm norm, string x)
    {
        var grouped = Graph.Op("Reshape", [x, Graph.Ints(0, norm.NumGroups, -1)]);
        using var ones = Tensors.Ones([norm.NumGroups], DType);
        using var zeros = Tensors.Zeros([norm.NumGroups], DType);
        var normalized = Graph.Op("InstanceNormalization", [grouped, Graph.Constant(ones, "ones"), Graph.Constant(zeros, "zeros")], ("epsilon", norm.Eps));
        var y = Graph.Op("Reshape", [normalized, Graph.Op("Shape", [x])]);
        if (norm.Weight is null) return y;
        // [C] → [C, 1, 1] so that it broadcasts over [N, C, H, W]
        using var w = norm.Weight.Reshape(norm.NumChannels, 1, 1);
        using var b = norm.Bias!.Reshape(norm.NumChannels, 1, 1);
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
            throw Unsupported("attention with group_norm, residual_connection or rescale_output_factor (the VAE's)");
        context ??= x;
        string Heads(string t) => Graph.Op("Transpose", [Graph.Op("Reshape", [t, Graph.Ints(0, 0, attn.Heads, attn.DimHead)])], ("perm", new long[] { 0, 2, 1, 3 }));
        var q = Heads(Linear(prefix + ".to_q", attn.ToQ, x));
        var k = Graph.Op("Transpose", [Graph.Op("Reshape", [Linear(prefix + ".to_k", attn.ToK, context), Graph.Ints(0, 0, attn.Heads, attn.DimHead)])], ("perm", new long[] { 0, 2, 3, 1 }));
        var v = Heads(Linear(prefix + ".to_v", attn.ToV, context));
        var scores = Graph.Op("Mul", [Graph.Op("MatMul", [q, k]), Scalar(attn.Scale)]);
        var o = Graph.Op("MatMul", [Graph.Op("Softmax", [scores], ("axis", -1L)), v]);
        var merged = Graph.Op("Reshape", [Graph.Op("Transpose", [o], ("perm", new long[] { 0, 2, 1, 3 })), Graph.Ints(0, 0, (long)attn.Heads * attn.DimHead)]);
        return Linear(prefix + ".to_out.0", attn.ToOut, merged);
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

    /// <summary>Nearest-neighbour upsampling to the spatial size of <paramref name="sizeOf"/> (the skip it meets), then the conv.</summary>
    public string Upsample(string prefix, Upsample2D up, string x, string sizeOf)
    {
        var sizes = Graph.Op("Concat", [Graph.Op("Slice", [Graph.Op("Shape", [x]), Graph.Ints(0), Graph.Ints(2)]), Graph.Op("Slice", [Graph.Op("Shape", [sizeOf]), Graph.Ints(2), Graph.Ints(4)])], ("axis", 0L));
        // PyTorch's "nearest": source index ⌊dst · in / out⌋
        var y = Graph.Op("Resize", [x, "", "", sizes], ("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor"));
        return OptionalChild(up, "conv") is Conv2d conv ? Conv2d(prefix + ".conv", conv, y) : y;
    }
}

using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx;

/// <summary>
/// The ONNX Runtime engine's text encoder: a CLIP text graph (input_ids int32 or int64 → last_hidden_state, through the
/// final layer norm; optimum's exports also give pooler_output or, with a projection, text_embeds, and with
/// output_hidden_states hidden_states.0 … hidden_states.L, transformers' hidden states without the final layer norm).
/// AUTOMATIC1111's emphasis is applied to its output exactly as the libtorch encoder does
/// (<see cref="ClipTextModel.ApplyEmphasis"/>).
/// <list type="bullet">
/// <item>Stable Diffusion's clip skip k (diffusers' encode_prompt) is hidden_states.(L + 1 − k) through the final layer norm:
/// the graph computes the hidden state, the layer norm's weights (text_model.final_layer_norm.weight and .bias, as
/// transformers, optimum and our exporter name them) are read from the file once; a graph without hidden_states outputs
/// (diffusers' export) refuses clip skip above 1 in one line.</item>
/// <item>SDXL (<see cref="EncodeHiddenState"/>) takes hidden_states.(L − 1 − skipped) and the pooled output (text_embeds of
/// text_encoder_2); a graph without hidden_states outputs cannot serve SDXL and says so in one line.</item>
/// </list>
/// </summary>
public sealed class OnnxTextEncoder : ITextEncoder
{
    private readonly OnnxSession session;
    private readonly string idsName, outputName;
    private readonly string? maskName, pooledName;
    private readonly double layerNormEps;
    private (Tensor Weight, Tensor Bias)? finalNorm;

    internal OnnxTextEncoder(OnnxSession session, int? numLayers, double layerNormEps)
    {
        this.session = session;
        this.layerNormEps = layerNormEps;
        idsName = session.RequireInput("token-id", "input_ids");
        maskName = session.FindInput("attention_mask");
        session.RejectUnknownInputs(idsName, maskName);
        outputName = session.OutputOr("last_hidden_state");
        pooledName = new[] { "text_embeds", "pooler_output" }.FirstOrDefault(session.Outputs.ContainsKey);
        var idsType = session.DTypeOf(idsName);
        if (idsType is not (DType.Int32 or DType.Int64))
            throw new InvalidDataException($"{session.Path}: input '{idsName}' is {OnnxSession.Describe(session.Inputs[idsName])}; token ids must be int32 or int64");
        // optimum's hidden_states.0 … hidden_states.L: the embeddings and each of the L layers' outputs
        var states = session.Outputs.Keys.Where(k => k.StartsWith(HiddenStatePrefix, StringComparison.Ordinal))
            .Select(k => int.TryParse(k.AsSpan(HiddenStatePrefix.Length), out var i) ? i : -1).Where(i => i >= 0).ToList();
        int? hiddenLayers = states.Count > 0 ? states.Max() : null;
        if (numLayers is not null && hiddenLayers is not null && hiddenLayers != numLayers)
            throw new InvalidDataException($"{session.Path}: the graph outputs hidden states up to {HiddenStateOutput(hiddenLayers.Value)} but its config.json has {numLayers} layers (hidden_states.0 … hidden_states.{numLayers} expected)");
        NumLayers = numLayers ?? hiddenLayers ?? 1;
    }

    /// <param name="config">The component's config.json when the folder has one (optimum's layout, our export): layers and layer_norm_eps.</param>
    public static OnnxTextEncoder Open(string path, ClipTextConfig? config, OnnxEngineOptions options) =>
        OnnxSession.OpenAs(path, options, session => new OnnxTextEncoder(session, config?.NumHiddenLayers, config?.LayerNormEps ?? 1e-5));

    private const string HiddenStatePrefix = "hidden_states.";
    private const string FinalNorm = "text_model.final_layer_norm";

    /// <summary>optimum's name of transformers' hidden_states[<paramref name="index"/>] (0: the embeddings, L: the last layer's output).</summary>
    public static string HiddenStateOutput(int index) => HiddenStatePrefix + index;

    /// <summary>The text encoder's layers when its config.json or its hidden_states outputs say (optimum's layout, our export), else 1: only clip skip 1 can run.</summary>
    public int NumLayers { get; }

    /// <summary>The static width of last_hidden_state (the hidden states' channels), or null.</summary>
    public int? Width => LastDim(outputName);

    /// <summary>The static width of the pooled output (text_embeds or pooler_output), or null.</summary>
    public int? PooledWidth => pooledName is null ? null : LastDim(pooledName);

    /// <summary>Refuses, in one line, a graph that cannot give SDXL's penultimate hidden state (and with <paramref name="pooled"/> its pooled embedding).</summary>
    public void RequireXl(bool pooled)
    {
        if (!session.Outputs.ContainsKey(HiddenStateOutput(NumLayers - 1)))
            throw new InvalidDataException($"{session.Path}: SDXL conditions on the text encoder's hidden states, but this graph has no {HiddenStateOutput(NumLayers - 1)} output (its outputs are {string.Join(", ", session.Outputs.Keys)}); export it with `ldm export onnx` or optimum's SDXL export");
        if (pooled && pooledName is null)
            throw new InvalidDataException($"{session.Path}: SDXL's pooled prompt embedding needs a text_embeds output, which this graph lacks (its outputs are {string.Join(", ", session.Outputs.Keys)})");
    }

    private int? LastDim(string output) => session.Outputs[output].Dimensions is { Length: > 0 } d && d[^1] > 0 ? d[^1] : null;

    /// <summary>The graph file.</summary>
    public string Path => session.Path;

    public Tensor EncodePrompt(Tensor inputIds, Tensor? weights, int skippedLayers)
    {
        var output = skippedLayers == 0 ? outputName : HiddenStateOutput(NumLayers - skippedLayers);
        if (!session.Outputs.ContainsKey(output))
            throw new NotSupportedException($"{session.Path}: clip skip {skippedLayers + 1} needs the text encoder's earlier hidden states (optimum's hidden_states.N outputs), which this ONNX export does not output (it has {string.Join(", ", session.Outputs.Keys)}); use clip skip 1, an `ldm export onnx` of the model, or the libtorch model");
        if (skippedLayers > 0) finalNorm ??= ReadFinalNorm(); // read before the scope: the encoder keeps them
        using var scope = DisposeScope.Enter();
        var z = Run(inputIds, output)[0].To(DType.Float32);
        if (finalNorm is var (w, b) && skippedLayers > 0) z = Functional.LayerNorm(z, [w.Size(0)], w, b, layerNormEps);
        return scope.Keep(weights is null ? z : ClipTextModel.ApplyEmphasis(z, weights));
    }

    // The final layer norm's weights, from the graph file (its only copy): the hidden state clip skip takes must pass through it.
    private (Tensor, Tensor) ReadFinalNorm()
    {
        string[] names = [FinalNorm + ".weight", FinalNorm + ".bias"];
        var found = OnnxInitializers.Read(session.Path, names);
        if (found.Count == 2 && found[names[0]].Dim == 1 && found[names[1]].Shape.SequenceEqual(found[names[0]].Shape)) return (found[names[0]], found[names[1]]);
        foreach (var t in found.Values) t.Dispose();
        throw new InvalidDataException($"{session.Path}: clip skip passes an earlier hidden state through the final layer norm, but the graph holds no [width] initializers {names[0]} and {names[1]}; use clip skip 1 or the libtorch model");
    }

    public ClipHiddenState EncodeHiddenState(Tensor inputIds, Tensor? weights, int skippedLayers, bool pooled)
    {
        var layer = NumLayers - 1 - skippedLayers;
        if (skippedLayers < 0 || layer < 0)
            throw new ArgumentOutOfRangeException(nameof(skippedLayers), skippedLayers, $"skipped layers must be in [0, {NumLayers - 1}]");
        var output = HiddenStateOutput(layer);
        if (!session.Outputs.ContainsKey(output))
            throw new NotSupportedException($"{session.Path}: SDXL conditions on the text encoder's hidden states, but this graph has no '{output}' output (it has {string.Join(", ", session.Outputs.Keys)}); export it with `ldm export onnx` or optimum's SDXL export (hidden_states.N outputs)");
        if (pooled && pooledName is null)
            throw new NotSupportedException($"{session.Path}: SDXL's pooled prompt embedding needs a text_embeds (or pooler_output) output, which this graph lacks (it has {string.Join(", ", session.Outputs.Keys)})");
        using var scope = DisposeScope.Enter();
        var values = pooled ? Run(inputIds, output, pooledName!) : Run(inputIds, output);
        var hidden = values[0].To(DType.Float32);
        if (weights is not null) hidden = ClipTextModel.ApplyEmphasis(hidden, weights);
        return new ClipHiddenState(scope.Keep(hidden), pooled ? scope.Keep(values[1].To(DType.Float32)) : null);
    }

    // Runs the graph on the ids, binding the named outputs ([batch, sequence, width] or [batch, width], the width static).
    private Tensor[] Run(Tensor inputIds, params string[] outputs)
    {
        var ids = OnnxTensors.Prepare(inputIds.Device == Device.CPU ? inputIds : inputIds.To(Device.CPU), session.DTypeOf(idsName));
        var bound = outputs.Select(name =>
        {
            var dims = session.Outputs[name].Dimensions;
            if (dims.Length is not (2 or 3) || dims[^1] <= 0)
                throw new InvalidDataException($"{session.Path}: output '{name}' is {OnnxSession.Describe(session.Outputs[name])}; a text encoder's outputs are [batch, sequence, width] or [batch, width] with a fixed width");
            long[] shape = dims.Length == 3 ? [ids.Size(0), ids.Size(1), dims[2]] : [ids.Size(0), dims[1]];
            return (name, Tensors.Empty(shape, session.DTypeOf(name)));
        }).ToList();
        var inputs = new List<(string, Tensor)> { (idsName, ids) };
        if (maskName is not null) inputs.Add((maskName, Tensors.OnesLike(ids)));
        session.Run(inputs, bound);
        return bound.Select(b => b.Item2).ToArray();
    }

    public void Dispose()
    {
        if (finalNorm is var (w, b))
        {
            w.Dispose();
            b.Dispose();
        }
        session.Dispose();
    }
}

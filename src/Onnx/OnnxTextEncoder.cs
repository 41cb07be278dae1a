using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Onnx;

/// <summary>
/// The ONNX Runtime engine's text encoder: a CLIP text graph (input_ids int32 or int64 → last_hidden_state, through the
/// final layer norm). AUTOMATIC1111's emphasis is applied to its output exactly as the libtorch encoder does
/// (<see cref="ClipTextModel.ApplyEmphasis"/>). Clip skip needs the hidden state before the last layers through the final
/// layer norm: our exporter writes it as clip_skip_k outputs; an export without them refuses clip skip above 1 in one line.
/// </summary>
public sealed class OnnxTextEncoder : ITextEncoder
{
    private readonly OnnxSession session;
    private readonly string idsName, outputName;
    private readonly string? maskName;

    internal OnnxTextEncoder(OnnxSession session, int? numLayers)
    {
        this.session = session;
        idsName = session.RequireInput("token-id", "input_ids");
        maskName = session.FindInput("attention_mask");
        session.RejectUnknownInputs(idsName, maskName);
        outputName = session.OutputOr("last_hidden_state");
        var idsType = session.DTypeOf(idsName);
        if (idsType is not (DType.Int32 or DType.Int64))
            throw new InvalidDataException($"{session.Path}: input '{idsName}' is {OnnxSession.Describe(session.Inputs[idsName])}; token ids must be int32 or int64");
        NumLayers = numLayers ?? 1;
    }

    public static OnnxTextEncoder Open(string path, int? numLayers, OnnxEngineOptions options) =>
        OnnxSession.OpenAs(path, options, session => new OnnxTextEncoder(session, numLayers));

    /// <summary>The graph output of AUTOMATIC1111's clip skip <paramref name="k"/> (≥ 2) in our exports.</summary>
    public static string ClipSkipOutput(int k) => $"clip_skip_{k}";

    /// <summary>The text encoder's layers when its config.json says (optimum's layout, our export), else 1: only clip skip 1 can run.</summary>
    public int NumLayers { get; }

    public Tensor EncodePrompt(Tensor inputIds, Tensor? weights, int skippedLayers)
    {
        var output = skippedLayers == 0 ? outputName : ClipSkipOutput(skippedLayers + 1);
        if (!session.Outputs.ContainsKey(output))
            throw new NotSupportedException($"{session.Path}: clip skip {skippedLayers + 1} needs the text encoder's earlier hidden state through its final layer norm, which this ONNX export does not output (it has {string.Join(", ", session.Outputs.Keys)}); use clip skip 1, an `ldm export onnx` of the model, or the libtorch model");
        using var scope = DisposeScope.Enter();
        var ids = OnnxTensors.Prepare(inputIds.Device == Device.CPU ? inputIds : inputIds.To(Device.CPU), session.DTypeOf(idsName));
        var outputType = session.DTypeOf(output);
        var dims = session.Outputs[output].Dimensions;
        if (dims.Length != 3 || dims[2] <= 0)
            throw new InvalidDataException($"{session.Path}: output '{output}' is {OnnxSession.Describe(session.Outputs[output])}; a text encoder's hidden states are [batch, sequence, width]");
        var hidden = Tensors.Empty([ids.Size(0), ids.Size(1), dims[2]], outputType);
        var inputs = new List<(string, Tensor)> { (idsName, ids) };
        if (maskName is not null) inputs.Add((maskName, Tensors.OnesLike(ids)));
        session.Run(inputs, [(output, hidden)]);
        var z = hidden.To(DType.Float32);
        return scope.Keep(weights is null ? z : ClipTextModel.ApplyEmphasis(z, weights));
    }

    public void Dispose() => session.Dispose();
}

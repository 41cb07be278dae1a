using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.TextEncoder;

/// <summary>
/// The output of <see cref="ClipTextModel.Forward"/>; owns its tensors.
/// </summary>
/// <param name="LastHiddenState">[B, L, D] after final_layer_norm: Stable Diffusion's prompt embedding.</param>
/// <param name="PoolerOutput">[B, D]: the last hidden state at the end-of-text token.</param>
/// <param name="HiddenStates">When asked for: the embeddings and each layer's output ([0] embeddings, [^1] the last layer before final_layer_norm); else empty.</param>
/// <param name="TextEmbeds">[B, projection_dim]: text_projection(pooler_output) of a <see cref="ClipTextModelWithProjection"/>; null for a CLIPTextModel.</param>
public sealed record ClipTextOutput(Tensor LastHiddenState, Tensor PoolerOutput, IReadOnlyList<Tensor> HiddenStates, Tensor? TextEmbeds = null) : IDisposable
{
    public void Dispose()
    {
        LastHiddenState.Dispose();
        PoolerOutput.Dispose();
        TextEmbeds?.Dispose();
        foreach (var t in HiddenStates) t.Dispose();
    }
}

/// <summary>
/// A hidden state taken before the final layer norm (SDXL's prompt embedding) and, when asked for, the pooled output
/// (projected for a <see cref="ClipTextModelWithProjection"/>: SDXL's pooled prompt embedding); owns its tensors.
/// </summary>
public sealed record ClipHiddenState(Tensor Hidden, Tensor? Pooled) : IDisposable
{
    public void Dispose()
    {
        Hidden.Dispose();
        Pooled?.Dispose();
    }
}

/// <summary>
/// transformers' <c>CLIPTextModel</c>: token ids [B, L] → contextual embeddings, with the causal mask
/// only (Stable Diffusion passes no attention mask, so padding tokens are attended to as in training).
/// Weight names are transformers' (<c>text_model.encoder.layers.0.self_attn.q_proj.weight</c>, …).
/// Trainable: every parameter receives gradients; attention dropout applies in training mode.
/// </summary>
public class ClipTextModel : Module
{
    private const string LegacyPositionIdsKey = "text_model.embeddings.position_ids";

    /// <summary>The architecture; <see cref="AddTokenEmbeddings"/> raises its vocab_size as transformers' resize_token_embeddings does.</summary>
    public ClipTextConfig Config { get; private set; }
    public ClipTextTransformer TextModel { get; }

    public ClipTextModel(ClipTextConfig config, Generator? generator = null) : this(config, ClipTextConfig.Architecture, generator)
    {
    }

    /// <param name="architecture">transformers' class name, written to config.json's "architectures".</param>
    protected ClipTextModel(ClipTextConfig config, string architecture, Generator? generator)
    {
        config.Validate();
        Config = config;
        ArchitectureName = architecture;
        TextModel = RegisterModule("text_model", new ClipTextTransformer(config, generator));
    }

    public int NumLayers => TextModel.Encoder.Layers.Count;

    /// <summary>transformers' class name, written to config.json's "architectures".</summary>
    public string ArchitectureName { get; }

    /// <summary>
    /// Appends <paramref name="rows"/> [k, hidden_size] to the token embedding (new tokens, e.g. textual inversion's) and
    /// returns the id of the first: the tokenizer must give the new tokens the ids first … first + k − 1.
    /// </summary>
    public int AddTokenEmbeddings(Tensor rows)
    {
        var table = TextModel.Embeddings.TokenEmbedding;
        var first = (int)table.NumEmbeddings;
        table.AppendRows(rows);
        Config = Config with { VocabSize = (int)table.NumEmbeddings };
        return first;
    }

    /// <summary>
    /// Runs the model on <paramref name="inputIds"/> [B, L] (int64). With <paramref name="outputHiddenStates"/>
    /// the result also holds every hidden state (transformers' output_hidden_states).
    /// </summary>
    public ClipTextOutput Forward(Tensor inputIds, bool outputHiddenStates = false)
    {
        using var scope = DisposeScope.Enter();
        var hiddenStates = new List<Tensor>();
        var hidden = RunLayers(inputIds, NumLayers, outputHiddenStates ? hiddenStates : null);
        var last = TextModel.FinalLayerNorm.Forward(hidden);
        var pooled = Pool(last, inputIds);
        var projected = Project(pooled);
        scope.Keep(hiddenStates);
        return new ClipTextOutput(scope.Keep(last), scope.Keep(pooled), hiddenStates, projected is null ? null : scope.Keep(projected));
    }

    /// <summary>The pooled output's projection (text_embeds); null for a model without a projection head.</summary>
    protected virtual Tensor? Project(Tensor pooled) => null;

    /// <summary>
    /// SDXL's encode_prompt: hidden_states[−(<paramref name="skippedLayers"/> + 2)], the input of a later encoder layer
    /// WITHOUT the final layer norm (diffusers counts clip skip this way for SDXL: 0 = the penultimate state), with
    /// AUTOMATIC1111's emphasis when <paramref name="weights"/> [B, L] is given. With <paramref name="pooled"/> also the
    /// pooled output of the whole model (text_embeds for a model with a projection), which emphasis does not change
    /// (as in AUTOMATIC1111). Only the layers needed are run.
    /// </summary>
    public ClipHiddenState EncodeHiddenState(Tensor inputIds, int skippedLayers, Tensor? weights = null, bool pooled = false)
    {
        if (skippedLayers < 0 || skippedLayers > NumLayers - 1)
            throw new ArgumentOutOfRangeException(nameof(skippedLayers), skippedLayers, $"skipped layers must be in [0, {NumLayers - 1}]");
        using var scope = DisposeScope.Enter();
        var layers = NumLayers - 1 - skippedLayers;
        Tensor hidden;
        Tensor? pool = null;
        if (pooled)
        {
            var states = new List<Tensor>();
            var last = RunLayers(inputIds, NumLayers, states);
            hidden = states[layers];
            var normed = TextModel.FinalLayerNorm.Forward(last);
            var p = Pool(normed, inputIds);
            pool = Project(p) ?? p;
        }
        else
        {
            hidden = RunLayers(inputIds, layers, null);
        }
        if (weights is not null) hidden = ApplyEmphasis(hidden, weights);
        return new ClipHiddenState(scope.Keep(hidden), pool is null ? null : scope.Keep(pool));
    }

    /// <summary>
    /// The prompt embedding diffusers' encode_prompt gives: last_hidden_state, or with
    /// <paramref name="clipSkip"/> = k the hidden state k layers before the last (hidden_states[−(k+1)])
    /// passed through final_layer_norm. diffusers' clip_skip 1 is what AUTOMATIC1111 calls "clip skip 2".
    /// Only the layers needed are run.
    /// </summary>
    public Tensor EncodePrompt(Tensor inputIds, int? clipSkip = null)
    {
        var skip = clipSkip ?? 0;
        if (skip < 0 || skip > NumLayers) throw new ArgumentOutOfRangeException(nameof(clipSkip), clipSkip, $"clip skip must be in [0, {NumLayers}]");
        using var scope = DisposeScope.Enter();
        var hidden = RunLayers(inputIds, NumLayers - skip, null);
        return scope.Keep(TextModel.FinalLayerNorm.Forward(hidden));
    }

    /// <summary>
    /// AUTOMATIC1111's prompt weighting: z = EncodePrompt(ids); z ← z · w (each token's vector scaled by
    /// its weight, <paramref name="weights"/> [B, L]); then z ← z · (mean(z_before) / mean(z_after)) so that the
    /// overall mean is unchanged ("restoring original mean", over the whole batch as A1111 does).
    /// </summary>
    public Tensor EncodeWeighted(Tensor inputIds, Tensor weights, int? clipSkip = null)
    {
        if (!weights.Shape.AsSpan().SequenceEqual(inputIds.Shape))
            throw new ArgumentException($"weights [{string.Join(", ", weights.Shape)}] must have the shape of the ids [{string.Join(", ", inputIds.Shape)}]", nameof(weights));
        using var z = EncodePrompt(inputIds, clipSkip);
        return ApplyEmphasis(z, weights);
    }

    /// <summary>
    /// AUTOMATIC1111's emphasis on an encoded prompt <paramref name="z"/> [B, L, D] from any engine: each token's vector
    /// scaled by its weight (<paramref name="weights"/> [B, L]), then the whole batch rescaled to its original mean.
    /// </summary>
    public static Tensor ApplyEmphasis(Tensor z, Tensor weights)
    {
        using var scope = DisposeScope.Enter();
        if (!weights.Shape.AsSpan().SequenceEqual(z.Shape.AsSpan(0, 2)))
            throw new ArgumentException($"weights [{string.Join(", ", weights.Shape)}] must have the shape of the ids [{string.Join(", ", z.Shape.Take(2))}]", nameof(weights));
        var originalMean = z.Mean();
        var weighted = z * weights.To(z.Device, z.DType).Unsqueeze(-1);
        var newMean = weighted.Mean();
        return scope.Keep(weighted * (originalMean / newMean));
    }

    /// <summary>Weights given as numbers, one row per prompt.</summary>
    public Tensor EncodeWeighted(Tensor inputIds, float[][] weights, int? clipSkip = null)
    {
        var flat = weights.SelectMany(w => w).ToArray();
        using var tensor = Tensor.From(flat, weights.Length, weights.Length == 0 ? 0 : weights[0].Length);
        return EncodeWeighted(inputIds, tensor, clipSkip);
    }

    // Embeddings and the first `layers` encoder layers under the causal mask; collects hidden states when given a list.
    private Tensor RunLayers(Tensor inputIds, int layers, List<Tensor>? hiddenStates)
    {
        if (inputIds.Dim != 2) throw new ArgumentException($"input ids must be [batch, length], not [{string.Join(", ", inputIds.Shape)}]", nameof(inputIds));
        var hidden = TextModel.Embeddings.Forward(inputIds);
        using var mask = CausalMask(inputIds.Size(1), hidden.DType, hidden.Device);
        for (int i = 0; i < layers; i++)
        {
            hiddenStates?.Add(hidden);
            var next = TextModel.Encoder.Layers[i].Forward(hidden, mask);
            if (hiddenStates is null) hidden.Dispose();
            hidden = next;
        }
        if (hiddenStates is not null && layers == NumLayers) hiddenStates.Add(hidden.Alias());
        return hidden;
    }

    /// <summary>[L, L] additive mask: 0 on and below the diagonal, the most negative finite value above (transformers' _make_causal_mask).</summary>
    public static Tensor CausalMask(long length, DType dtype, Device device)
    {
        var lowest = dtype switch
        {
            DType.Float16 => -65504.0,
            DType.BFloat16 => -3.3895313892515355e38,
            DType.Float64 => double.MinValue,
            _ => float.MinValue,
        };
        using var full = Tensors.Full([length, length], lowest, dtype, device);
        return full.Triu(1);
    }

    /// <summary>
    /// The hidden state at the end-of-text token of each row: for eos_token_id 2 (legacy configs) at the
    /// largest id (argmax, as OpenAI's CLIP), otherwise at the first occurrence of eos_token_id.
    /// </summary>
    private Tensor Pool(Tensor last, Tensor inputIds)
    {
        using var scope = DisposeScope.Enter();
        var ids = inputIds.To(last.Device, DType.Int32);
        var positions = Config.EosTokenId == 2 ? ids.ArgMax(-1) : ids.Eq(Config.EosTokenId!.Value).To(DType.Int32).ArgMax(-1);
        var (b, d) = (last.Size(0), last.Size(2));
        var index = positions.View(b, 1, 1).Expand(b, 1, d);
        return scope.Keep(last.Gather(1, index).Squeeze(1));
    }

    // ---- transformers model folders ----

    /// <summary>How a CLIPTextModel lives in a transformers folder (config.json + model.safetensors).</summary>
    public static PretrainedFormat<ClipTextModel, ClipTextConfig> Format { get; } = new()
    {
        ReadConfig = ClipTextConfig.Load,
        Create = config => new ClipTextModel(config),
        WriteConfig = (path, model) => model.WriteConfig(path),
        WeightsName = Pretrained.TransformersWeights,
    };

    /// <summary>
    /// Loads a transformers folder (config.json + model[.variant].safetensors), e.g. Stable Diffusion's
    /// text_encoder/. The model is in evaluation mode.
    /// </summary>
    public static ClipTextModel FromPretrained(string directory, Device? device = null, DType? dtype = null, string? variant = null) =>
        Format.Load(directory, device, dtype, variant);

    /// <summary>Writes config.json (transformers' keys, sorted) and model[.variant].safetensors, loadable by transformers' from_pretrained.</summary>
    public void Save(string directory, string? variant = null) => Format.Save(this, directory, variant);

    // The position_ids buffer that older transformers versions saved (newer ones do not) is accepted and ignored.
    protected override void UpgradeStateDict(string prefix, IDictionary<string, Tensor> stateDict) =>
        stateDict.Remove(prefix + LegacyPositionIdsKey);

    protected void WriteConfig(string path)
    {
        var dtype = TextModel.FinalLayerNorm.Weight!.DType;
        var config = Config with
        {
            Architectures = [ArchitectureName],
            ModelTypeName = ClipTextConfig.ModelType,
            TorchDtype = dtype switch { DType.Float16 => "float16", DType.BFloat16 => "bfloat16", DType.Float64 => "float64", _ => "float32" },
            TransformersVersion = Config.TransformersVersion ?? "4.43.0",
        };
        var node = JsonSerializer.SerializeToNode(config, ConfigJson.Options)!.AsObject();
        var sorted = new JsonObject();
        foreach (var key in node.Select(p => p.Key).Order(StringComparer.Ordinal).ToList())
        {
            var value = node[key];
            node.Remove(key);
            sorted[key] = value;
        }
        AtomicFile.WriteAllText(path, sorted.ToJsonString(ConfigJson.Options) + "\n");
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{ArchitectureName}({Config.NumHiddenLayers} layers, hidden {Config.HiddenSize}, {Config.NumAttentionHeads} heads)");
}

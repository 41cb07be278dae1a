using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.TextEncoder;

// The blocks of transformers' CLIP text tower (modeling_clip.py, v4.43), with its attribute names.
// Weight initialisation follows CLIPPreTrainedModel._init_weights so that a model trained from
// scratch starts as transformers' does.

/// <summary>Token embedding plus learned absolute position embedding (<c>position_ids</c> is a non-persistent buffer).</summary>
public sealed class ClipTextEmbeddings : Module<Tensor, Tensor>
{
    public Embedding TokenEmbedding { get; }
    public Embedding PositionEmbedding { get; }
    public Tensor PositionIds { get; }

    public ClipTextEmbeddings(ClipTextConfig config, Generator? generator = null)
    {
        TokenEmbedding = RegisterModule("token_embedding", new Embedding(config.VocabSize, config.HiddenSize, generator));
        PositionEmbedding = RegisterModule("position_embedding", new Embedding(config.MaxPositionEmbeddings, config.HiddenSize, generator));
        using (var positions = Tensors.Arange(config.MaxPositionEmbeddings))
            PositionIds = RegisterBuffer("position_ids", positions.Unsqueeze(0), persistent: false);
        Init.Normal_(TokenEmbedding.Weight, 0, 0.02 * config.InitializerFactor, generator);
        Init.Normal_(PositionEmbedding.Weight, 0, 0.02 * config.InitializerFactor, generator);
    }

    /// <summary>Ids [B, L] → embeddings [B, L, hidden].</summary>
    public override Tensor Forward(Tensor inputIds)
    {
        var length = inputIds.Size(-1);
        if (length > PositionEmbedding.NumEmbeddings)
            throw new ArgumentException($"sequence length {length} exceeds max_position_embeddings ({PositionEmbedding.NumEmbeddings})", nameof(inputIds));
        using var scope = DisposeScope.Enter();
        var tokens = TokenEmbedding.Forward(inputIds);
        var positions = PositionEmbedding.Forward(PositionIds.Slice(1, 0, length));
        return scope.Keep(tokens + positions);
    }
}

/// <summary>
/// Multi-head self-attention: softmax((q/√d) kᵀ + mask) v per head, with the causal mask added as
/// transformers does (the most negative float above the diagonal).
/// </summary>
public sealed class ClipAttention : Module
{
    public Linear KProj { get; }
    public Linear VProj { get; }
    public Linear QProj { get; }
    public Linear OutProj { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public double Scale { get; }
    public double AttentionDropout { get; }

    public ClipAttention(ClipTextConfig config, Generator? generator = null)
    {
        var dim = config.HiddenSize;
        Heads = config.NumAttentionHeads;
        HeadDim = config.HeadDim;
        Scale = Math.Pow(HeadDim, -0.5);
        AttentionDropout = config.AttentionDropout;
        KProj = RegisterModule("k_proj", new Linear(dim, dim, generator: generator));
        VProj = RegisterModule("v_proj", new Linear(dim, dim, generator: generator));
        QProj = RegisterModule("q_proj", new Linear(dim, dim, generator: generator));
        OutProj = RegisterModule("out_proj", new Linear(dim, dim, generator: generator));

        var factor = config.InitializerFactor;
        var inStd = Math.Pow(dim, -0.5) * Math.Pow(2 * config.NumHiddenLayers, -0.5) * factor;
        foreach (var projection in new[] { QProj, KProj, VProj }) InitLinear(projection, inStd, generator);
        InitLinear(OutProj, Math.Pow(dim, -0.5) * factor, generator);
    }

    internal static void InitLinear(Linear linear, double std, Generator? generator)
    {
        Init.Normal_(linear.Weight, 0, std, generator);
        if (linear.Bias is not null) Init.Zeros_(linear.Bias);
    }

    /// <summary>hidden [B, L, D] with an additive mask broadcastable to [B, heads, L, L] → [B, L, D].</summary>
    public Tensor Forward(Tensor hidden, Tensor? additiveMask)
    {
        using var scope = DisposeScope.Enter();
        var (b, l, d) = (hidden.Size(0), hidden.Size(1), hidden.Size(2));
        // [B, L, D] → [B·heads, L, d], scaling the queries first as transformers 4.43 does.
        Tensor Split(Tensor x) => x.View(b, l, Heads, HeadDim).Transpose(1, 2).Contiguous().View(b * Heads, l, HeadDim);
        var query = Split(QProj.Forward(hidden) * Scale);
        var key = Split(KProj.Forward(hidden));
        var value = Split(VProj.Forward(hidden));

        var weights = query.Bmm(key.Transpose(1, 2));
        if (additiveMask is not null) weights = (weights.View(b, Heads, l, l) + additiveMask).View(b * Heads, l, l);
        var probabilities = Functional.Softmax(weights, -1);
        if (AttentionDropout > 0 && IsTraining) probabilities = Functional.Dropout(probabilities, AttentionDropout, training: true);

        var attended = probabilities.Bmm(value).View(b, Heads, l, HeadDim).Transpose(1, 2).Reshape(b, l, d);
        return scope.Keep(OutProj.Forward(attended));
    }
}

/// <summary>fc1 → hidden_act → fc2.</summary>
public sealed class ClipMlp : Module<Tensor, Tensor>
{
    public Linear Fc1 { get; }
    public Linear Fc2 { get; }
    public string HiddenAct { get; }

    public ClipMlp(ClipTextConfig config, Generator? generator = null)
    {
        HiddenAct = config.HiddenAct;
        Fc1 = RegisterModule("fc1", new Linear(config.HiddenSize, config.IntermediateSize, generator: generator));
        Fc2 = RegisterModule("fc2", new Linear(config.IntermediateSize, config.HiddenSize, generator: generator));
        var factor = config.InitializerFactor;
        ClipAttention.InitLinear(Fc1, Math.Pow(2 * config.HiddenSize, -0.5) * factor, generator);
        ClipAttention.InitLinear(Fc2, Math.Pow(config.HiddenSize, -0.5) * Math.Pow(2 * config.NumHiddenLayers, -0.5) * factor, generator);
    }

    public override Tensor Forward(Tensor input)
    {
        using var scope = DisposeScope.Enter();
        var hidden = ClipActivation.Apply(HiddenAct, Fc1.Forward(input));
        return scope.Keep(Fc2.Forward(hidden));
    }
}

/// <summary>Pre-norm transformer layer: h += attn(LN₁(h)); h += mlp(LN₂(h)).</summary>
public sealed class ClipEncoderLayer : Module
{
    public ClipAttention SelfAttn { get; }
    public LayerNorm LayerNorm1 { get; }
    public ClipMlp Mlp { get; }
    public LayerNorm LayerNorm2 { get; }

    public ClipEncoderLayer(ClipTextConfig config, Generator? generator = null)
    {
        SelfAttn = RegisterModule("self_attn", new ClipAttention(config, generator));
        LayerNorm1 = RegisterModule("layer_norm1", new LayerNorm(config.HiddenSize, config.LayerNormEps));
        Mlp = RegisterModule("mlp", new ClipMlp(config, generator));
        LayerNorm2 = RegisterModule("layer_norm2", new LayerNorm(config.HiddenSize, config.LayerNormEps));
    }

    public Tensor Forward(Tensor hidden, Tensor? additiveMask)
    {
        using var scope = DisposeScope.Enter();
        var attended = hidden + SelfAttn.Forward(LayerNorm1.Forward(hidden), additiveMask);
        var output = attended + Mlp.Forward(LayerNorm2.Forward(attended));
        return scope.Keep(output);
    }
}

/// <summary>The stack of <c>layers</c>.</summary>
public sealed class ClipEncoder : Module
{
    public ModuleList<ClipEncoderLayer> Layers { get; }

    public ClipEncoder(ClipTextConfig config, Generator? generator = null) =>
        Layers = RegisterModule("layers", new ModuleList<ClipEncoderLayer>(
            Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ClipEncoderLayer(config, generator))));
}

/// <summary>transformers' CLIPTextTransformer: embeddings, encoder, final_layer_norm.</summary>
public sealed class ClipTextTransformer : Module
{
    public ClipTextEmbeddings Embeddings { get; }
    public ClipEncoder Encoder { get; }
    public LayerNorm FinalLayerNorm { get; }

    public ClipTextTransformer(ClipTextConfig config, Generator? generator = null)
    {
        Embeddings = RegisterModule("embeddings", new ClipTextEmbeddings(config, generator));
        Encoder = RegisterModule("encoder", new ClipEncoder(config, generator));
        FinalLayerNorm = RegisterModule("final_layer_norm", new LayerNorm(config.HiddenSize, config.LayerNormEps));
    }
}

namespace LatentDiffusion.Torch.NN;

/// <summary>torch.nn.Linear: y = x Wᵀ + b with weight [out, in] and bias [out].</summary>
public sealed class Linear : Module<Tensor, Tensor>
{
    public long InFeatures { get; }
    public long OutFeatures { get; }
    public Tensor Weight { get; }
    public Tensor? Bias { get; }

    public Linear(long inFeatures, long outFeatures, bool bias = true, Generator? generator = null)
    {
        if (inFeatures < 0 || outFeatures < 0) throw new ArgumentOutOfRangeException(nameof(inFeatures), "feature counts must not be negative");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        var w = Tensors.Empty([outFeatures, inFeatures]);
        var b = bias ? Tensors.Empty([outFeatures]) : null;
        Init.DefaultLinearOrConv(w, b, generator);
        Weight = RegisterParameter("weight", w);
        Bias = RegisterParameter("bias", b);
    }

    /// <summary>
    /// A term added to the output, y = x Wᵀ + b + Adapter(x), for an adapter that trains beside a frozen layer
    /// (a LoRA's scale · up(down(x)), as PEFT's LoraLayer adds it); null: none.
    /// </summary>
    public Func<Tensor, Tensor>? Adapter { get; set; }

    public override Tensor Forward(Tensor input)
    {
        if (Adapter is not { } adapter) return Functional.Linear(input, Weight, Bias);
        using var scope = DisposeScope.Enter();
        return scope.Keep(Functional.Linear(input, Weight, Bias) + adapter(input));
    }
}

/// <summary>torch.nn.Embedding: rows of weight [num_embeddings, embedding_dim], initialised N(0, 1).</summary>
public sealed class Embedding : Module<Tensor, Tensor>
{
    public long NumEmbeddings { get; private set; }
    public long EmbeddingDim { get; }
    public Tensor Weight { get; }

    public Embedding(long numEmbeddings, long embeddingDim, Generator? generator = null)
    {
        NumEmbeddings = numEmbeddings;
        EmbeddingDim = embeddingDim;
        var w = Tensors.Empty([numEmbeddings, embeddingDim]);
        Init.Normal_(w, 0, 1, generator);
        Weight = RegisterParameter("weight", w);
    }

    /// <summary>Looks up integer <paramref name="input"/> indices (any shape) → [..., embedding_dim].</summary>
    public override Tensor Forward(Tensor input) => Functional.Embedding(input, Weight);

    /// <summary>
    /// Grows the table by <paramref name="rows"/> [k, embedding_dim] at the end (the step of transformers'
    /// resize_token_embeddings that new tokens need); <see cref="Weight"/> stays the same object.
    /// </summary>
    public void AppendRows(Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Dim != 2 || rows.Size(1) != EmbeddingDim)
            throw new ArgumentException($"rows of [{string.Join(", ", rows.Shape)}] cannot extend an embedding of dimension {EmbeddingDim}", nameof(rows));
        var requiresGrad = Weight.RequiresGrad;
        using (Autograd.NoGrad())
        {
            using var added = rows.To(Weight.Device, Weight.DType);
            Weight.ReplaceWith(Tensor.Cat([Weight, added]).DetachFromDisposeScope());
        }
        if (requiresGrad) Weight.RequiresGrad = true;
        NumEmbeddings = Weight.Size(0);
        OnTensorsReplaced();
    }
}

using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>diffusers' class conditioning: an embedding summed with (or concatenated to) the timestep embedding.</summary>
internal static class ClassEmbedding
{
    /// <summary>_set_class_embedding: null type with num_class_embeds → a table; "timestep", "identity", "projection", "simple_projection".</summary>
    public static Module? Create(string? type, int? numClassEmbeds, string actFn, int? projectionInputDim, long timeEmbedDim, long timestepInputDim,
        Generator? generator = null) =>
        type switch
        {
            null when numClassEmbeds is { } n => new Embedding(n, timeEmbedDim, generator),
            null => null,
            "timestep" => new TimestepEmbedding(timestepInputDim, timeEmbedDim, actFn, generator: generator),
            "identity" => new Identity(),
            "projection" => new TimestepEmbedding(projectionInputDim
                ?? throw ConfigErrors.Invalid("projection_class_embeddings_input_dim", "must be set for class_embed_type \"projection\""), timeEmbedDim,
                generator: generator),
            "simple_projection" => new Linear(projectionInputDim
                ?? throw ConfigErrors.Invalid("projection_class_embeddings_input_dim", "must be set for class_embed_type \"simple_projection\""), timeEmbedDim,
                generator: generator),
            _ => throw ConfigErrors.Unsupported("class_embed_type", type, "null, \"timestep\", \"identity\", \"projection\" or \"simple_projection\""),
        };

    /// <summary>The class embedding of <paramref name="labels"/>; "timestep" labels go through the time projection first.</summary>
    public static Tensor Embed(Module embedding, string? type, Tensor? labels, Module<Tensor, Tensor> timeProj, DType dtype)
    {
        if (labels is null) throw new ArgumentException("class labels are required: the model is class-conditional (num_class_embeds / class_embed_type)");
        using var scope = DisposeScope.Enter();
        var input = type == "timestep" ? timeProj.Forward(labels).To(dtype) : labels;
        var emb = embedding switch
        {
            TimestepEmbedding t => t.Forward(input),
            Module<Tensor, Tensor> m => m.Forward(input),
            _ => throw new InvalidOperationException($"unexpected class embedding {embedding.GetType().Name}"),
        };
        return scope.Keep(emb.To(dtype));
    }
}

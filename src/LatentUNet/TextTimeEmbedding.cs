using LatentDiffusion.Blocks;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.LatentUNet;

/// <summary>
/// diffusers' added_cond_kwargs for addition_embed_type "text_time" (SDXL's micro-conditioning, Podell et al. 2023, §2.2):
/// <paramref name="TextEmbeds"/> [N, pooled dim] the pooled text embedding, <paramref name="TimeIds"/> [N, k] the size
/// and crop conditioning (SDXL base: original_size, crops_coords_top_left, target_size = 6 values; the refiner: original
/// size, crop, aesthetic score = 5). The caller owns the tensors.
/// </summary>
public sealed record AddedConditions(Tensor TextEmbeds, Tensor TimeIds)
{
    /// <summary>A stream's rows of both (<see cref="BatchStreams"/>).</summary>
    internal AddedConditions Slice(BatchSlice slice) => new(slice.Of(TextEmbeds)!, slice.Of(TimeIds)!);
}

/// <summary>
/// SDXL's "text_time" addition embedding: each time id through the sinusoidal add_time_proj
/// (Timesteps(addition_time_embed_dim, flip_sin_to_cos, freq_shift)), flattened per sample, concatenated AFTER the pooled
/// text embedding, through add_embedding (TimestepEmbedding: linear_1, SiLU, linear_2); the result is added to the
/// timestep embedding.
/// </summary>
internal sealed class TextTimeEmbedding
{
    private readonly Timesteps addTimeProj;
    private readonly TimestepEmbedding addEmbedding;

    public TextTimeEmbedding(Module owner, UNet2DConditionModelConfig config, long timeEmbedDim, Generator? generator)
    {
        // Validate checked both are set for "text_time".
        addTimeProj = owner.RegisterModule("add_time_proj", new Timesteps(config.AdditionTimeEmbedDim!.Value, config.FlipSinToCos, config.FreqShift));
        addEmbedding = owner.RegisterModule("add_embedding", new TimestepEmbedding(config.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim, generator: generator));
        InputDim = config.ProjectionClassEmbeddingsInputDim.Value;
        TimeEmbedDim = config.AdditionTimeEmbedDim.Value;
    }

    /// <summary>add_embedding's input width: pooled dim + time ids × addition_time_embed_dim.</summary>
    public int InputDim { get; }

    /// <summary>addition_time_embed_dim: the width of one embedded time id.</summary>
    public int TimeEmbedDim { get; }

    /// <summary>The embedding to add to the timestep embedding of a batch of <paramref name="batch"/> samples.</summary>
    public Tensor Forward(AddedConditions? added, long batch, DType dtype)
    {
        if (added is null)
            throw new ArgumentException("this U-Net has addition_embed_type \"text_time\" (SDXL): it needs the pooled text embeddings and the time ids (added_cond_kwargs)");
        var (text, ids) = (added.TextEmbeds, added.TimeIds);
        if (text.Dim != 2 || ids.Dim != 2 || text.Size(0) != batch || ids.Size(0) != batch)
            throw new ArgumentException($"added conditions must be [batch, n] with batch {batch}: text_embeds [{string.Join(", ", text.Shape)}], time_ids [{string.Join(", ", ids.Shape)}]");
        var width = text.Size(1) + ids.Size(1) * TimeEmbedDim;
        if (width != InputDim)
            throw new ArgumentException($"text_embeds ({text.Size(1)}) + {ids.Size(1)} time ids × addition_time_embed_dim {TimeEmbedDim} = {width}, " +
                $"but the U-Net's projection_class_embeddings_input_dim is {InputDim}");
        using var scope = DisposeScope.Enter();
        var timeEmbeds = addTimeProj.Forward(ids.Flatten()).Reshape(batch, -1);
        var addEmbeds = Tensor.Cat([text.To(timeEmbeds.DType), timeEmbeds], -1).To(dtype);
        return scope.Keep(addEmbedding.Forward(addEmbeds));
    }
}

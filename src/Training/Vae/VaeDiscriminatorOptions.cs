using System.Text.Json.Serialization;
using LatentDiffusion.Autoencoder;
using LatentDiffusion.Training.Recipes;

namespace LatentDiffusion.Training.Vae;

/// <summary>
/// The optional "discriminator" section of a VAE recipe: LDM's PatchGAN term (taming-transformers'
/// LPIPSWithDiscriminator without LPIPS). The disc_* names and defaults are that class's arguments;
/// the optimiser defaults are LDM's (Adam, betas 0.5 and 0.9, the autoencoder's learning rate).
/// Without the section the VAE trains on reconstruction and KL alone.
/// </summary>
public sealed record VaeDiscriminatorOptions
{
    /// <summary>
    /// Steps trained without the discriminator (taming's global_step &lt; disc_start): with 2, steps 1 and
    /// 2 train the autoencoder alone and step 3 is the first adversarial one. Required (taming has no default).
    /// </summary>
    [JsonPropertyName("disc_start")] public long? DiscStart { get; init; }

    /// <summary>Scale of the generator's adversarial term on top of the adaptive weight.</summary>
    [JsonPropertyName("disc_weight")] public double DiscWeight { get; init; } = 1.0;

    /// <summary>Factor of both adversarial losses once started (0 before disc_start).</summary>
    [JsonPropertyName("disc_factor")] public double DiscFactor { get; init; } = 1.0;

    /// <summary>Stride-2 convolutions of the NLayerDiscriminator (n_layers).</summary>
    [JsonPropertyName("disc_num_layers")] public int DiscNumLayers { get; init; } = 3;

    /// <summary>Channels of the first layer (ndf); they double per layer up to 8 × ndf.</summary>
    [JsonPropertyName("disc_ndf")] public int DiscNdf { get; init; } = 64;

    [JsonPropertyName("disc_loss")] public DiscriminatorLossKind DiscLoss { get; init; } = DiscriminatorLossKind.Hinge;

    /// <summary>"batch_norm" (taming) or "group_norm" (independent of the batch).</summary>
    [JsonPropertyName("norm")] public DiscriminatorNorm Norm { get; init; } = DiscriminatorNorm.BatchNorm;

    /// <summary>
    /// VQGAN's adaptive weight ‖∇_L rec‖ / (‖∇_L g‖ + 10⁻⁴) at the decoder's conv_out (clamped to [0, 10⁴]);
    /// false: the generator term is weighted by disc_weight alone.
    /// </summary>
    [JsonPropertyName("adaptive_weight")] public bool AdaptiveWeight { get; init; } = true;

    /// <summary>The discriminator's peak learning rate; null: training.learning_rate. It follows training.lr_schedule.</summary>
    [JsonPropertyName("learning_rate")] public double? LearningRate { get; init; }

    [JsonPropertyName("adam_beta1")] public double AdamBeta1 { get; init; } = 0.5;
    [JsonPropertyName("adam_beta2")] public double AdamBeta2 { get; init; } = 0.9;
    [JsonPropertyName("adam_epsilon")] public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>AdamW's decoupled weight decay; 0 (LDM's plain Adam).</summary>
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; }

    /// <summary>Rejects impossible values with one error naming the field; <paramref name="imageSize"/> is the training resolution.</summary>
    public VaeDiscriminatorOptions Validate(string source, int imageSize)
    {
        RecipeException Bad(string field, string why) => new($"{source}: 'discriminator.{field}' {why}");
        if (DiscStart is not { } start) throw Bad("disc_start", "is required (the steps trained before the discriminator joins)");
        if (start < 0) throw Bad("disc_start", $"must not be negative (got {start})");
        if (!(DiscWeight >= 0) || double.IsInfinity(DiscWeight)) throw Bad("disc_weight", $"must be a non-negative number (got {DiscWeight})");
        if (!(DiscFactor >= 0) || double.IsInfinity(DiscFactor)) throw Bad("disc_factor", $"must be a non-negative number (got {DiscFactor})");
        if (DiscNumLayers < 1) throw Bad("disc_num_layers", $"must be at least 1 (got {DiscNumLayers})");
        if (PatchesPerSide(imageSize, DiscNumLayers) < 1)
        {
            var most = Enumerable.Range(1, DiscNumLayers).LastOrDefault(n => PatchesPerSide(imageSize, n) >= 1);
            throw Bad("disc_num_layers", $"{DiscNumLayers} leaves no patch of a {imageSize}×{imageSize} image (at most {most})");
        }
        if (DiscNdf < 1) throw Bad("disc_ndf", $"must be at least 1 (got {DiscNdf})");
        var unsplittable = Widths().FirstOrDefault(c => c > 32 && c % 32 != 0);
        if (Norm == DiscriminatorNorm.GroupNorm && unsplittable > 0)
            throw Bad("disc_ndf", $"{DiscNdf} gives a layer of {unsplittable} channels, which group_norm cannot split into 32 groups (use a multiple of 32, or at most 32 channels)");
        if (LearningRate is { } lr && (!(lr > 0) || double.IsInfinity(lr))) throw Bad("learning_rate", $"must be a positive number, or null for training.learning_rate (got {lr})");
        if (!(AdamBeta1 >= 0 && AdamBeta1 < 1)) throw Bad("adam_beta1", $"must be in [0, 1) (got {AdamBeta1})");
        if (!(AdamBeta2 >= 0 && AdamBeta2 < 1)) throw Bad("adam_beta2", $"must be in [0, 1) (got {AdamBeta2})");
        if (!(AdamEpsilon >= 0)) throw Bad("adam_epsilon", $"must not be negative (got {AdamEpsilon})");
        if (!(WeightDecay >= 0)) throw Bad("weight_decay", $"must not be negative (got {WeightDecay})");
        return this;
    }

    /// <summary>Patch logits per side: n stride-2 4×4 convolutions (padding 1) halve the side, two stride-1 ones take 1 each.</summary>
    private static long PatchesPerSide(int imageSize, int layers)
    {
        long side = imageSize;
        for (int i = 0; i < layers && side > 0; i++) side /= 2;
        return side - 2;
    }

    /// <summary>The normalised layers' widths: ndf · min(2ⁿ, 8) for n = 1 … disc_num_layers.</summary>
    private IEnumerable<int> Widths() => Enumerable.Range(1, DiscNumLayers).Select(n => DiscNdf << Math.Min(n, 3));

    /// <summary>The discriminator these options describe, initialised from <paramref name="generator"/> (taming's weights_init).</summary>
    public NLayerDiscriminator Create(int imageChannels, Torch.Generator generator) =>
        new(imageChannels, DiscNdf, DiscNumLayers, Norm, generator);
}

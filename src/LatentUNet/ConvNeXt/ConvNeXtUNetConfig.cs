using System.Text.Json.Serialization;
using LatentDiffusion.Torch.Config;

namespace LatentDiffusion.LatentUNet.ConvNeXt;

/// <summary>
/// Hyperparameters of <see cref="ConvNeXtUNet"/> (the "TwoResUNet" / "AttentionUNet" of the
/// aerial-imagery DDPM write-up), stored as our own config.json (<c>"_class_name": "ConvNeXtUNet"</c>;
/// diffusers has no such class). JSON names follow the write-up's constructor arguments; the
/// defaults are its defaults, except <see cref="Channels"/> which it sets to 3 for RGB.
/// </summary>
public sealed record ConvNeXtUNetConfig : IModelConfig<ConvNeXtUNetConfig>
{
    public const string ClassName = "ConvNeXtUNet";

    /// <summary>Base width: channels of the first level and size of the sinusoidal timestep embedding.</summary>
    [JsonPropertyName("dim")] public int Dim { get; init; } = 64;

    /// <summary>Channels after the 7×7 input convolution (null: <see cref="Dim"/>).</summary>
    [JsonPropertyName("init_dim")] public int? InitDim { get; init; }

    /// <summary>Output channels (null: <see cref="Channels"/>, i.e. the predicted noise).</summary>
    [JsonPropertyName("out_dim")] public int? OutDim { get; init; }

    /// <summary>Width of each level as a multiple of <see cref="Dim"/>; all levels but the last halve the resolution.</summary>
    [JsonPropertyName("dim_mults")] public int[] DimMults { get; init; } = [1, 2, 4, 8];

    /// <summary>Image channels (1 for Fashion-MNIST, 3 for RGB).</summary>
    [JsonPropertyName("channels")] public int Channels { get; init; } = 3;

    [JsonPropertyName("sinusoidal_pos_emb_theta")] public double SinusoidalPosEmbTheta { get; init; } = 10000;

    /// <summary>Expansion of the ConvNeXt block's inner 3×3 convolution (the write-up's <c>mult</c>).</summary>
    [JsonPropertyName("convnext_mult")] public int ConvNeXtMult { get; init; } = 2;

    /// <summary>Gate every skip connection with an attention gate (the write-up's AttentionUNet).</summary>
    [JsonPropertyName("attention_gates")] public bool AttentionGates { get; init; }

    /// <summary>Training resolution (informative; any multiple of <see cref="DownsamplingFactor"/> runs).</summary>
    [JsonPropertyName("sample_size")] public int SampleSize { get; init; } = 32;

    [JsonIgnore] public int EffectiveInitDim => InitDim ?? Dim;
    [JsonIgnore] public int EffectiveOutDim => OutDim ?? Channels;
    [JsonIgnore] public int TimeEmbeddingDim => Dim * 4;

    /// <summary>Total downsampling: every level but the last halves the resolution.</summary>
    [JsonIgnore] public int DownsamplingFactor => 1 << Math.Max(0, DimMults.Length - 1);

    /// <summary>Rejects configurations the architecture cannot build, naming the field.</summary>
    public ConvNeXtUNetConfig Validate(string source = "ConvNeXtUNet config")
    {
        var check = new ConfigCheck(source);
        // The sinusoidal embedding divides by (dim/2 − 1), so it needs dim ≥ 4 and even.
        check.That(Dim >= 4 && Dim % 2 == 0, "dim", $"must be an even number ≥ 4 (got {Dim})");
        check.Positive(InitDim, "init_dim");
        check.Positive(OutDim, "out_dim");
        var mults = check.PositiveList(DimMults, "dim_mults");
        // Each level halves the resolution: 2^levels must stay an int.
        check.That(mults.Length <= 16, "dim_mults", $"has {mults.Length} levels; at most 16 are supported");
        check.Positive(Channels, "channels");
        check.That(SinusoidalPosEmbTheta > 1 && double.IsFinite(SinusoidalPosEmbTheta), "sinusoidal_pos_emb_theta",
            $"must be a finite number > 1 (got {SinusoidalPosEmbTheta})");
        check.Positive(ConvNeXtMult, "convnext_mult");
        check.That(SampleSize > 0 && SampleSize % DownsamplingFactor == 0, "sample_size",
            $"must be a positive multiple of the total downsampling {DownsamplingFactor} (got {SampleSize})");
        return this;
    }

    static string? IModelConfig<ConvNeXtUNetConfig>.ConfigClassName => ClassName;

    void IModelConfig<ConvNeXtUNetConfig>.Validate(string source) => Validate(source);

    public static ConvNeXtUNetConfig Load(string path) => ModelConfig.Load<ConvNeXtUNetConfig>(path);

    public void Save(string path) => ConfigJson.Save(path, this, ClassName, version: null);
}

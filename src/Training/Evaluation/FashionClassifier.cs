using System.Text.Json.Serialization;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// Architecture of a <see cref="FashionClassifier"/> (its config.json). The defaults are the
/// shipped Fashion-MNIST classifier's; the Fashion colours judge has in_channels 3 and num_colours 8.
/// </summary>
public sealed record FashionClassifierConfig : IModelConfig<FashionClassifierConfig>
{
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 1;
    [JsonPropertyName("sample_size")] public int SampleSize { get; init; } = 32;

    /// <summary>Output channels of each conv block; every block halves the resolution.</summary>
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [32, 64, 64];

    /// <summary>Width of the penultimate layer, whose activations are the FID features.</summary>
    [JsonPropertyName("feature_dim")] public int FeatureDim { get; init; } = 128;

    [JsonPropertyName("num_classes")] public int NumClasses { get; init; } = 10;

    /// <summary>Size of the second (colour) head; 0 for none.</summary>
    [JsonPropertyName("num_colours")] public int NumColours { get; init; }

    [JsonPropertyName("dropout")] public double Dropout { get; init; } = 0.2;

    public const string ClassName = "FashionClassifier";

    static string? IModelConfig<FashionClassifierConfig>.ConfigClassName => ClassName;

    /// <summary>Side of the last block's output (the input of the first Linear).</summary>
    [JsonIgnore] public int FinalSide => SampleSize >> BlockOutChannels.Length;

    public void Validate(string source)
    {
        var check = new ConfigCheck(source);
        check.Positive(InChannels, "in_channels");
        var channels = check.PositiveList(BlockOutChannels, "block_out_channels");
        check.That(channels.Length <= 16, "block_out_channels", $"has {channels.Length} blocks; at most 16 are supported");
        check.That(SampleSize > 0 && SampleSize % (1 << channels.Length) == 0, "sample_size",
            $"({SampleSize}) must be a positive multiple of 2^{channels.Length} (one halving per block)");
        check.Positive(FeatureDim, "feature_dim");
        check.That(NumClasses >= 2, "num_classes", $"must be at least 2 (got {NumClasses})");
        check.NotNegative(NumColours, "num_colours");
        check.That(Dropout >= 0 && Dropout < 1, "dropout", $"must be in [0, 1) (got {Dropout})");
    }
}

/// <summary>What a <see cref="FashionClassifier"/> computes for a batch: class logits [N, classes],
/// colour logits [N, colours] (null without a colour head) and the penultimate features [N, feature_dim].</summary>
public sealed record ClassifierOutput(Tensor ClassLogits, Tensor? ColourLogits, Tensor Features) : IDisposable
{
    public void Dispose()
    {
        ClassLogits.Dispose();
        ColourLogits?.Dispose();
        Features.Dispose();
    }
}

/// <summary>
/// A small CNN over 32×32 images in [-1, 1] (the DDPM format: Fashion-MNIST padded by 2):
/// per block conv3×3 → BatchNorm → ReLU → max-pool 2, then flatten → Linear → ReLU (the features)
/// → dropout → Linear heads for the class and, for the judge, the colour.
/// </summary>
public sealed class FashionClassifier : Module<Tensor, ClassifierOutput>
{
    private readonly ModuleList<ConvBlock> blocks;
    private readonly Linear fc;
    private readonly Dropout dropout;
    private readonly Linear classHead;
    private readonly Linear? colourHead;

    public FashionClassifierConfig Config { get; }

    public FashionClassifier(FashionClassifierConfig? config = null, Generator? generator = null)
    {
        Config = config ?? new FashionClassifierConfig();
        Config.Validate(FashionClassifierConfig.ClassName);
        blocks = RegisterModule("blocks", new ModuleList<ConvBlock>());
        var channels = (long)Config.InChannels;
        foreach (var c in Config.BlockOutChannels)
        {
            blocks.Add(new ConvBlock(channels, c, generator));
            channels = c;
        }
        fc = RegisterModule("fc", new Linear(channels * Config.FinalSide * Config.FinalSide, Config.FeatureDim, generator: generator));
        dropout = RegisterModule("dropout", new Dropout(Config.Dropout));
        classHead = RegisterModule("class_head", new Linear(Config.FeatureDim, Config.NumClasses, generator: generator));
        colourHead = Config.NumColours > 0 ? RegisterModule("colour_head", new Linear(Config.FeatureDim, Config.NumColours, generator: generator)) : null;
    }

    public override ClassifierOutput Forward(Tensor input)
    {
        var shape = input.Shape;
        if (shape.Length != 4 || shape[1] != Config.InChannels || shape[2] != Config.SampleSize || shape[3] != Config.SampleSize)
            throw new ArgumentException($"{FashionClassifierConfig.ClassName} expects [N, {Config.InChannels}, {Config.SampleSize}, {Config.SampleSize}] images, got [{string.Join(", ", shape)}]");
        using var scope = DisposeScope.Enter();
        var x = input;
        foreach (var block in blocks) x = block.Forward(x);
        var features = fc.Forward(x.Flatten(1)).Relu();
        var hidden = dropout.Forward(features);
        var classLogits = classHead.Forward(hidden);
        var colourLogits = colourHead?.Forward(hidden);
        return new ClassifierOutput(scope.Keep(classLogits), colourLogits is null ? null : scope.Keep(colourLogits), scope.Keep(features));
    }

    /// <summary>How a classifier lives in a model folder: config.json + model.safetensors (float32).</summary>
    public static PretrainedFormat<FashionClassifier, FashionClassifierConfig> Format { get; } = new()
    {
        ReadConfig = ModelConfig.Load<FashionClassifierConfig>,
        Create = config => new FashionClassifier(config),
        WriteConfig = (path, model) => ConfigJson.Save(path, model.Config, FashionClassifierConfig.ClassName, version: null),
        WeightsName = Pretrained.TransformersWeights,
    };

    /// <summary>Loads config.json and model.safetensors from a model folder, in evaluation mode.</summary>
    public static FashionClassifier FromPretrained(string directory, Device? device = null) => Format.Load(directory, device);

    /// <summary>Writes config.json and model.safetensors into <paramref name="directory"/>.</summary>
    public void Save(string directory) => Format.Save(this, directory);
}

/// <summary>conv3×3 (no bias: BatchNorm has one) → BatchNorm → ReLU → max-pool 2.</summary>
internal sealed class ConvBlock : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d norm;

    public ConvBlock(long inChannels, long outChannels, Generator? generator)
    {
        conv = RegisterModule("conv", new Conv2d(inChannels, outChannels, 3, padding: 1, bias: false, generator: generator));
        norm = RegisterModule("norm", new BatchNorm2d(outChannels));
    }

    public override Tensor Forward(Tensor input)
    {
        using var scope = DisposeScope.Enter();
        var y = norm.Forward(conv.Forward(input)).Relu();
        return scope.Keep(Functional.MaxPool2d(y, 2));
    }
}

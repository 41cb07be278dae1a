using System.Text.Json;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>What a judge predicts for a batch of images, and the features FID compares.</summary>
public sealed record JudgedBatch(long[] Classes, long[]? Colours, double[] Features, int FeatureDim);

/// <summary>
/// A trained classifier and the statistics of its penultimate features on the real test split,
/// loaded from a folder of models/judges: config.json, model.safetensors, test_statistics.safetensors
/// (mu, sigma) and accuracy.json (its measured test accuracy).
/// </summary>
public sealed class Judge : IDisposable
{
    /// <summary>The Fashion-MNIST classifier (grey 32×32 images; judges pixel DDPM samples).</summary>
    public const string FashionClassifierName = "fashion-classifier";

    /// <summary>The Fashion colours judge (RGB 32×32; class and colour; judges text-to-image samples).</summary>
    public const string FashionColoursJudgeName = "fashion-colours-judge";

    public const string StatisticsFile = "test_statistics.safetensors";
    public const string AccuracyFile = "accuracy.json";

    /// <summary>Environment variable naming the folder that holds the judges (default: models/judges of the repository).</summary>
    public const string DirectoryVariable = "LDM_JUDGES";

    public FashionClassifier Model { get; }
    public FeatureStatistics Reference { get; }
    public string Directory { get; }

    private Judge(FashionClassifier model, FeatureStatistics reference, string directory)
    {
        Model = model;
        Reference = reference;
        Directory = directory;
    }

    public static Judge Load(string directory)
    {
        var statistics = Path.Combine(directory, StatisticsFile);
        if (!File.Exists(statistics)) throw new FileNotFoundException($"{directory}: no {StatisticsFile} (feature statistics of the test split)");
        var reference = FeatureStatistics.Load(statistics);
        var model = FashionClassifier.FromPretrained(directory);
        if (reference.Dimension != model.Config.FeatureDim)
        {
            model.Dispose();
            throw new InvalidDataException($"{statistics}: statistics of {reference.Dimension}-d features, but the model's features are {model.Config.FeatureDim}-d");
        }
        return new Judge(model, reference, directory);
    }

    public static Judge LoadFashionClassifier(string? directory = null) => Load(directory ?? Locate(FashionClassifierName));

    public static Judge LoadFashionColoursJudge(string? directory = null) => Load(directory ?? Locate(FashionColoursJudgeName));

    /// <summary>The measured accuracy shipped with the judge.</summary>
    public JudgeReport? ReadReport()
    {
        var path = Path.Combine(Directory, AccuracyFile);
        return File.Exists(path) ? JsonSerializer.Deserialize<JudgeReport>(Torch.BoundedFile.ReadAllText(path, Torch.BoundedFile.ConfigLimit, "judge report"), JudgeReport.JsonOptions) : null;
    }

    /// <summary>
    /// The folder of judge <paramref name="name"/>: under $LDM_JUDGES if set, else models/judges/ found
    /// by walking up from the application's folder, then from the current directory.
    /// </summary>
    public static string Locate(string name)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(DirectoryVariable);
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            var path = Path.Combine(fromEnvironment, name);
            return File.Exists(Path.Combine(path, "config.json"))
                ? path
                : throw new FileNotFoundException($"{path}: judge '{name}' not found (${DirectoryVariable} is {fromEnvironment})");
        }
        foreach (var start in new[] { AppContext.BaseDirectory, System.IO.Directory.GetCurrentDirectory() })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models", "judges", name);
                if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
            }
        throw new FileNotFoundException($"judge '{name}' not found in models/judges/ above {AppContext.BaseDirectory} or the current directory; set {DirectoryVariable} to the folder that holds it");
    }

    /// <summary>
    /// Classifies images [N, C, 32, 32] in [-1, 1] (values outside are clamped, as a sampler's output
    /// would be when saved) and returns the predictions and features. The input stays the caller's.
    /// </summary>
    public JudgedBatch Classify(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = images.To(Device.CPU, DType.Float32);
        if (x.Dim == 3 && Model.Config.InChannels == 1) x = x.Unsqueeze(1);
        x = x.Clamp(-1, 1);
        Model.Eval();
        using var output = Model.Forward(x);
        var classes = output.ClassLogits.ArgMax(1).ToArray<long>();
        var colours = output.ColourLogits?.ArgMax(1).ToArray<long>();
        var features = output.Features.To(DType.Float64).Contiguous().ToArray<double>();
        return new JudgedBatch(classes, colours, features, Model.Config.FeatureDim);
    }

    /// <summary>
    /// Converts pipeline output — [N, H, W, C] in [0, 1], diffusers' output_type "np", as
    /// DdpmPipeline.Generate and GenerationResult.Pixels give — to the judges' [N, C, H, W] in [-1, 1]
    /// (x·2 − 1). Returns a new tensor; the input stays the caller's.
    /// </summary>
    public static Tensor FromPipelineImages(Tensor nhwc)
    {
        ArgumentNullException.ThrowIfNull(nhwc);
        if (nhwc.Dim != 4) throw new ArgumentException($"expected pipeline images [N, H, W, C], got [{string.Join(", ", nhwc.Shape)}]");
        using var scope = DisposeScope.Enter();
        return scope.Keep((nhwc.Permute(0, 3, 1, 2) * 2 - 1).Contiguous());
    }

    public void Dispose() => Model.Dispose();
}

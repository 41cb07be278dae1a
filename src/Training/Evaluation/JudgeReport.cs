using System.Text.Json;
using System.Text.Json.Serialization;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>How a shipped judge was trained: the settings and the time it took, on what.</summary>
public sealed record JudgeTrainingRecord(
    [property: JsonPropertyName("dataset")] string Dataset,
    [property: JsonPropertyName("images")] int Images,
    [property: JsonPropertyName("epochs")] int Epochs,
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("batch_size")] int BatchSize,
    [property: JsonPropertyName("learning_rate")] double LearningRate,
    [property: JsonPropertyName("augmentation")] string Augmentation,
    [property: JsonPropertyName("final_loss")] double FinalLoss,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("cpu_seconds")] double CpuSeconds,
    [property: JsonPropertyName("machine")] string Machine);

/// <summary>accuracy.json of a judge: its accuracy measured on the full test split after training.</summary>
public sealed record JudgeReport(
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("test_split")] string TestSplit,
    [property: JsonPropertyName("test_images")] int TestImages,
    [property: JsonPropertyName("class_accuracy")] double ClassAccuracy,
    [property: JsonPropertyName("colour_accuracy")] double? ColourAccuracy,
    [property: JsonPropertyName("per_class_accuracy")] IReadOnlyDictionary<string, double> PerClassAccuracy,
    [property: JsonPropertyName("parameters")] long Parameters,
    [property: JsonPropertyName("training")] JudgeTrainingRecord Training)
{
    public static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };
}

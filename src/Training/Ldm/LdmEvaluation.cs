using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.Adapters;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Evaluation;

namespace LatentDiffusion.Training.Ldm;

/// <summary>
/// How <see cref="LdmEvaluation"/> makes its images: <see cref="SamplesPerPrompt"/> per canonical prompt, with
/// the folder's scheduler. Prompt i uses seeds <see cref="Seed"/> + i·n … + i·n + n − 1 (image j of a prompt uses
/// seed + j, as in generation), so no two samples share their noise. Null fields take GenerationRequest's
/// defaults (30 steps, guidance 7.5, the model's size).
/// </summary>
public sealed record LdmEvaluationRequest
{
    public int SamplesPerPrompt { get; init; } = 4;
    public int? Steps { get; init; }
    public double? GuidanceScale { get; init; }
    public int? Size { get; init; }
    public ulong Seed { get; init; }

    /// <summary>LoRAs merged for the evaluation (a LoRA's before/after: the same seeds with and without).</summary>
    public IReadOnlyList<LoraRequest> Loras { get; init; } = [];

    /// <summary>
    /// Only the ten prompts of this colour ("a magenta t-shirt", …), e.g. a new colour word a LoRA taught (judged by
    /// <see cref="TintJudge"/>); null: the 80 canonical prompts. Prompt i uses seeds from seed + i·n as well.
    /// </summary>
    public string? Colour { get; init; }
}

/// <summary>
/// What `ldm eval prompts --json` prints for a text-to-image model: adherences (fractions of samples)
/// judged by the Fashion colours judge over the 80 canonical prompts, the classifier-feature FID
/// against the test split, and how the images were made.
/// </summary>
public sealed record LdmEvaluationResult(
    [property: JsonPropertyName("class_adherence")] double? ClassAdherence,
    [property: JsonPropertyName("colour_adherence")] double? ColourAdherence,
    [property: JsonPropertyName("held_out_adherence")] double? HeldOutAdherence,
    [property: JsonPropertyName("seen_adherence")] double? SeenAdherence,
    [property: JsonPropertyName("fid")] double Fid,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("samples_per_prompt")] int SamplesPerPrompt,
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("guidance_scale")] double GuidanceScale,
    [property: JsonPropertyName("sampler")] string Sampler,
    [property: JsonPropertyName("seed")] ulong Seed,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("prompts")] IReadOnlyList<PromptResult> Prompts);

/// <summary>Evaluates a text-to-image model trained on Fashion colours with <see cref="PromptEvaluation"/> (what `ldm eval prompts` runs).</summary>
public static class LdmEvaluation
{
    /// <summary>The guidance scale the shipped model's figures are reported with.</summary>
    public const double DocumentedGuidanceScale = 4.0;

    /// <summary>Loads the diffusers folder <paramref name="modelDirectory"/> and evaluates it (see the overload on a pipeline).</summary>
    public static LdmEvaluationResult Run(string modelDirectory, LdmEvaluationRequest request, Judge? judge = null,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (!Directory.Exists(modelDirectory)) throw new DirectoryNotFoundException($"{modelDirectory}: model folder not found");
        using var pipeline = StableDiffusionPipeline.FromPretrained(modelDirectory);
        return Run(pipeline, request, judge, progress, cancellationToken);
    }

    /// <summary>
    /// Generates <see cref="LdmEvaluationRequest.SamplesPerPrompt"/> images for each of the 80 canonical
    /// prompts ("a red sneaker", …; held-out combinations marked) and judges their class and colour
    /// (<paramref name="judge"/>: the shipped Fashion colours judge when null). Reproducible: the seeds are fixed by the request.
    /// </summary>
    public static LdmEvaluationResult Run(StableDiffusionPipeline pipeline, LdmEvaluationRequest request, Judge? judge = null,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(request);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var template = new GenerationRequest { Prompt = "" };
        template = template with
        {
            Steps = request.Steps ?? template.Steps,
            GuidanceScale = request.GuidanceScale ?? template.GuidanceScale,
            Width = request.Size ?? template.Width,
            Height = request.Size ?? template.Height,
            Loras = request.Loras ?? [],
        };
        var n = request.SamplesPerPrompt;
        var prompts = request.Colour is { } colour ? PromptEvaluation.ColourPrompts(colour) : PromptEvaluation.StandardPrompts();
        var index = prompts.Select((p, i) => (p.Prompt, i)).ToDictionary(x => x.Prompt, x => (ulong)x.i);
        Tensor Generate(string prompt, int count)
        {
            var seed = request.Seed + index[prompt] * (ulong)count;
            using var generated = pipeline.TextToImage(template with { Prompt = prompt, NumImages = count, Seed = seed }, null, cancellationToken);
            return Judge.FromPipelineImages(generated.Pixels);
        }
        var r = PromptEvaluation.Evaluate(Generate, prompts, n, judge, progress, cancellationToken);
        return new LdmEvaluationResult(r.ClassAdherence, r.ColourAdherence, r.HeldOutAdherence, r.SeenAdherence, r.Fid, r.Samples, n,
            template.Steps, template.GuidanceScale, pipeline.SchedulerConfig.ClassName, request.Seed, clock.Elapsed.TotalSeconds, r.Prompts);
    }
}

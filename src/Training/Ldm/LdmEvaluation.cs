using System.Text.Json.Serialization;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;
using LatentDiffusion.Training.Evaluation;

namespace LatentDiffusion.Training.Ldm;

/// <summary>
/// What `ldm eval prompts --json` prints for a text-to-image model: adherences (fractions of samples)
/// judged by the Fashion colours judge over the 80 canonical prompts, the classifier-feature FID
/// against the test split, and how the images were made.
/// </summary>
public sealed record LdmEvaluationResult(
    [property: JsonPropertyName("class_adherence")] double? ClassAdherence,
    [property: JsonPropertyName("colour_adherence")] double? ColourAdherence,
    [property: JsonPropertyName("heldout_adherence")] double? HeldOutAdherence,
    [property: JsonPropertyName("seen_adherence")] double? SeenAdherence,
    [property: JsonPropertyName("fid")] double Fid,
    [property: JsonPropertyName("samples_per_prompt")] int SamplesPerPrompt,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("guidance_scale")] double GuidanceScale,
    [property: JsonPropertyName("sampler")] string Sampler,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("prompts")] IReadOnlyList<PromptResult> Prompts);

/// <summary>Evaluates a text-to-image model folder with <see cref="PromptEvaluation"/>.</summary>
public static class LdmEvaluation
{
    /// <summary>The guidance scale the shipped model is evaluated (and documented) with.</summary>
    public const double DefaultGuidanceScale = 4.0;

    /// <summary>
    /// Loads the diffusers folder <paramref name="modelDirectory"/>, generates
    /// <paramref name="samplesPerPrompt"/> images for each of the 80 canonical prompts (seed = the
    /// prompt's index, so a run is reproducible) with the folder's scheduler at <paramref name="steps"/>
    /// (null: GenerationRequest's default) and <paramref name="guidanceScale"/>, and judges them.
    /// </summary>
    public static LdmEvaluationResult Run(string modelDirectory, int samplesPerPrompt, double guidanceScale = DefaultGuidanceScale, int? steps = null,
        Judge? judge = null, FashionColoursOptions? options = null, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var pipeline = StableDiffusionPipeline.FromPretrained(modelDirectory);
        return Run(pipeline, samplesPerPrompt, guidanceScale, steps, judge, options, progress, cancellationToken);
    }

    /// <summary>As <see cref="Run(string, int, double, int?, Judge?, FashionColoursOptions?, IProgress{EvaluationProgress}?, CancellationToken)"/> on a loaded pipeline.</summary>
    public static LdmEvaluationResult Run(StableDiffusionPipeline pipeline, int samplesPerPrompt, double guidanceScale = DefaultGuidanceScale, int? steps = null,
        Judge? judge = null, FashionColoursOptions? options = null, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var prompts = PromptEvaluation.StandardPrompts(options);
        var index = prompts.Select((p, i) => (p.Prompt, i)).ToDictionary(x => x.Prompt, x => x.i);
        var template = new GenerationRequest { Prompt = "" };
        var stepCount = steps ?? template.Steps;
        Tensor Generate(string prompt, int n)
        {
            using var result = pipeline.TextToImage(template with
            {
                Prompt = prompt,
                NumImages = n,
                Steps = stepCount,
                GuidanceScale = guidanceScale,
                Seed = (ulong)index[prompt],
            }, cancellation: cancellationToken);
            return Judge.FromPipelineImages(result.Pixels);
        }
        var r = PromptEvaluation.Evaluate(Generate, prompts, samplesPerPrompt, judge, progress, cancellationToken);
        return new LdmEvaluationResult(r.ClassAdherence, r.ColourAdherence, r.HeldOutAdherence, r.SeenAdherence, r.Fid, samplesPerPrompt, r.Samples,
            stepCount, guidanceScale, pipeline.SchedulerConfig.ClassName, clock.Elapsed.TotalSeconds, r.Prompts);
    }
}

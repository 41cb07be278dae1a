using System.Text.Json.Serialization;
using LatentDiffusion.Torch;
using LatentDiffusion.Training.Data;

namespace LatentDiffusion.Training.Evaluation;

/// <summary>
/// A prompt to judge: what it asks for (class and colour indices of Fashion colours; null where the
/// prompt leaves it open) and whether that combination was held out of training. Colour indices past the
/// eight training colours name <see cref="FashionColours.NewColours"/> (<see cref="TintJudge.FullPalette"/>'s order).
/// </summary>
public sealed record EvaluationPrompt(
    [property: JsonPropertyName("prompt")] string Prompt,
    [property: JsonPropertyName("class")] int? Class,
    [property: JsonPropertyName("colour")] int? Colour,
    [property: JsonPropertyName("held_out")] bool HeldOut = false);

/// <summary>How the judge saw the samples of one prompt.</summary>
public sealed record PromptResult(
    [property: JsonPropertyName("prompt")] string Prompt,
    [property: JsonPropertyName("class")] string? Class,
    [property: JsonPropertyName("colour")] string? Colour,
    [property: JsonPropertyName("held_out")] bool HeldOut,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("class_adherence")] double? ClassAdherence,
    [property: JsonPropertyName("colour_adherence")] double? ColourAdherence,
    [property: JsonPropertyName("adherence")] double Adherence,
    [property: JsonPropertyName("predicted_classes")] IReadOnlyDictionary<string, int> PredictedClasses,
    [property: JsonPropertyName("predicted_colours")] IReadOnlyDictionary<string, int> PredictedColours);

/// <summary>
/// What `ldm eval prompts --json` prints. Adherences are fractions of samples: class adherence over
/// prompts that name a class, colour adherence over those that name a colour; held-out adherence is the
/// fraction of samples of held-out prompts whose class and colour are both right (null when no prompt
/// is held out), seen adherence the same over the other prompts that name both.
/// </summary>
public sealed record PromptEvaluationResult(
    [property: JsonPropertyName("class_adherence")] double? ClassAdherence,
    [property: JsonPropertyName("colour_adherence")] double? ColourAdherence,
    [property: JsonPropertyName("held_out_adherence")] double? HeldOutAdherence,
    [property: JsonPropertyName("seen_adherence")] double? SeenAdherence,
    [property: JsonPropertyName("fid")] double Fid,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("prompts")] IReadOnlyList<PromptResult> Prompts);

/// <summary>
/// Judges a text-to-image generator trained on Fashion colours with the shipped Fashion colours judge.
/// The generator is a delegate so that this layer need not know the pipeline.
/// </summary>
public static class PromptEvaluation
{
    /// <summary>
    /// Every class × colour combination as its canonical prompt ("a red sneaker", "a pair of blue
    /// trousers"), classes outer, colours inner, the held-out ones (of <paramref name="options"/>) marked.
    /// </summary>
    public static IReadOnlyList<EvaluationPrompt> StandardPrompts(FashionColoursOptions? options = null)
    {
        var heldOut = (options ?? FashionColoursOptions.Default).Validate();
        var prompts = new List<EvaluationPrompt>();
        for (int c = 0; c < FashionColours.ClassNames.Count; c++)
            for (int k = 0; k < FashionColours.Colours.Count; k++)
                prompts.Add(new EvaluationPrompt(Captions.Canonical(c, FashionColours.Colours[k].Name), c, k, heldOut.Contains((c, k))));
        return prompts;
    }

    /// <summary>
    /// The canonical prompt of every class in colour <paramref name="colour"/> ("a magenta t-shirt", …, "a magenta ankle boot"),
    /// a training colour or a new one (<see cref="TintJudge.FullPalette"/>).
    /// </summary>
    public static IReadOnlyList<EvaluationPrompt> ColourPrompts(string colour)
    {
        var k = TintJudge.FullPalette.Select(c => c.Name).ToList().FindIndex(n => string.Equals(n, colour, StringComparison.OrdinalIgnoreCase));
        if (k < 0) throw new ArgumentException($"colour '{colour}' is not one of {string.Join(", ", TintJudge.FullPalette.Select(c => c.Name))}", nameof(colour));
        var name = TintJudge.FullPalette[k].Name;
        return [.. Enumerable.Range(0, FashionColours.ClassNames.Count).Select(c => new EvaluationPrompt(Captions.Canonical(c, name), c, k))];
    }

    /// <summary>
    /// Prompts given as (text, class, colour); held-out marks come from <paramref name="options"/>.
    /// </summary>
    public static IReadOnlyList<EvaluationPrompt> FromTuples(IEnumerable<(string Prompt, int? Class, int? Colour)> prompts, FashionColoursOptions? options = null)
    {
        var heldOut = (options ?? FashionColoursOptions.Default).Validate();
        return prompts.Select(p => new EvaluationPrompt(p.Prompt, p.Class, p.Colour, p.Class is { } c && p.Colour is { } k && heldOut.Contains((c, k)))).ToList();
    }

    public static PromptEvaluationResult Evaluate(Func<string, int, Tensor> generate, IEnumerable<(string Prompt, int? Class, int? Colour)> prompts,
        int samplesPerPrompt, Judge? judge = null, FashionColoursOptions? options = null, IProgress<EvaluationProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        Evaluate(generate, FromTuples(prompts, options), samplesPerPrompt, judge, progress, cancellationToken);

    /// <summary>
    /// Calls <paramref name="generate"/>(prompt, n) once per prompt for <paramref name="samplesPerPrompt"/>
    /// images [n, 3, 32, 32] in [-1, 1] (an owned tensor, disposed here), has the judge classify class
    /// and colour, and pools every sample's features for the FID against the Fashion colours test split.
    /// A prompt asking for a new colour (one the judge's colour head was not trained on) has its colours named by
    /// <see cref="TintJudge"/> over the full palette instead (so "magenta" can be right, or be called purple).
    /// </summary>
    public static PromptEvaluationResult Evaluate(Func<string, int, Tensor> generate, IEnumerable<EvaluationPrompt> prompts, int samplesPerPrompt,
        Judge? judge = null, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(generate);
        ArgumentNullException.ThrowIfNull(prompts);
        if (samplesPerPrompt < 1) throw new ArgumentOutOfRangeException(nameof(samplesPerPrompt), samplesPerPrompt, "at least one sample per prompt");
        var list = prompts.ToList();
        if (list.Count == 0) throw new ArgumentException("no prompts to evaluate", nameof(prompts));
        if (list.Count * samplesPerPrompt < 2) throw new ArgumentException("FID needs at least 2 samples in all");
        var owned = judge is null;
        judge ??= Judge.LoadFashionColoursJudge();
        try
        {
            var config = judge.Model.Config;
            if (config.InChannels != FashionColours.Channels || config.NumColours != FashionColours.Colours.Count)
                throw new ArgumentException($"{judge.Directory} is not a Fashion colours judge (it needs 3 input channels and {FashionColours.Colours.Count} colours)");
            var features = new FeatureAccumulator();
            var results = new List<PromptResult>();
            var tally = new Tally();
            var total = list.Count * samplesPerPrompt;
            foreach (var prompt in list)
            {
                cancellationToken.ThrowIfCancellationRequested();
                JudgedBatch judged;
                using (var scope = DisposeScope.Enter())
                {
                    var images = generate(prompt.Prompt, samplesPerPrompt) ?? throw new InvalidOperationException($"the generator returned no tensor for \"{prompt.Prompt}\"");
                    if (images.Dim != 4 || images.Size(0) != samplesPerPrompt || images.Size(1) != FashionColours.Channels)
                        throw new InvalidOperationException($"the generator returned [{string.Join(", ", images.Shape)}] for \"{prompt.Prompt}\"; expected [{samplesPerPrompt}, 3, 32, 32]");
                    judged = judge.Classify(images);
                    if (prompt.Colour >= FashionColours.Colours.Count)
                        judged = judged with { Colours = [.. TintJudge.Name(images, TintJudge.FullPalette).Select(k => (long)k)] };
                    images.Dispose();
                }
                features.Add(judged.Features, judged.FeatureDim);
                results.Add(Score(prompt, judged, tally));
                progress?.Report(new EvaluationProgress(tally.Samples, total));
            }
            var fid = Fid.Compute(features.ToStatistics(), judge.Reference);
            return new PromptEvaluationResult(
                Ratio(tally.ClassRight, tally.ClassAsked), Ratio(tally.ColourRight, tally.ColourAsked),
                Ratio(tally.HeldOutRight, tally.HeldOutAsked), Ratio(tally.SeenRight, tally.SeenAsked), fid, tally.Samples, results);
        }
        finally
        {
            if (owned) judge.Dispose();
        }
    }

    private sealed class Tally
    {
        public int Samples, ClassAsked, ClassRight, ColourAsked, ColourRight, HeldOutAsked, HeldOutRight, SeenAsked, SeenRight;
    }

    private static PromptResult Score(EvaluationPrompt prompt, JudgedBatch judged, Tally tally)
    {
        var n = judged.Classes.Length;
        int classRight = 0, colourRight = 0, bothRight = 0;
        var classes = FashionColours.ClassNames;
        var colours = TintJudge.FullPalette;
        var predictedClasses = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var predictedColours = new SortedDictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            var cls = (int)judged.Classes[i];
            var colour = (int)judged.Colours![i];
            Count(predictedClasses, classes[cls]);
            Count(predictedColours, colour < 0 ? "none" : colours[colour].Name);
            var classOk = prompt.Class is null || prompt.Class == cls;
            var colourOk = prompt.Colour is null || prompt.Colour == colour;
            if (prompt.Class is not null && classOk) classRight++;
            if (prompt.Colour is not null && colourOk) colourRight++;
            if (classOk && colourOk) bothRight++;
        }
        tally.Samples += n;
        if (prompt.Class is not null) { tally.ClassAsked += n; tally.ClassRight += classRight; }
        if (prompt.Colour is not null) { tally.ColourAsked += n; tally.ColourRight += colourRight; }
        if (prompt.Class is not null && prompt.Colour is not null)
        {
            if (prompt.HeldOut) { tally.HeldOutAsked += n; tally.HeldOutRight += bothRight; }
            else { tally.SeenAsked += n; tally.SeenRight += bothRight; }
        }
        return new PromptResult(prompt.Prompt,
            prompt.Class is { } c ? classes[c] : null, prompt.Colour is { } k ? colours[k].Name : null, prompt.HeldOut, n,
            prompt.Class is null ? null : (double)classRight / n, prompt.Colour is null ? null : (double)colourRight / n, (double)bothRight / n,
            predictedClasses, predictedColours);
    }

    private static void Count(SortedDictionary<string, int> counts, string key) => counts[key] = counts.GetValueOrDefault(key) + 1;

    private static double? Ratio(int right, int asked) => asked == 0 ? null : (double)right / asked;
}

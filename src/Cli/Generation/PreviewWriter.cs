using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Cli.Generation;

/// <summary>
/// <c>--preview PATH</c>: each preview the pipeline reports replaces that PNG (written whole, then
/// renamed), before the progress goes on to the display.
/// </summary>
internal sealed class PreviewWriter(IProgress<GenerationProgress> inner, string path) : IProgress<GenerationProgress>
{
    /// <summary><paramref name="inner"/> itself without a preview path, else a writer around it.</summary>
    public static IProgress<GenerationProgress> Around(IProgress<GenerationProgress> inner, string? path) =>
        path is null ? inner : new PreviewWriter(inner, path);

    public void Report(GenerationProgress value)
    {
        value.Preview?.SavePng(path);
        inner.Report(value);
    }
}

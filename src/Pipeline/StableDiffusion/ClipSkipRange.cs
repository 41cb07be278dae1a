namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>
/// AUTOMATIC1111's clip skip runs from 1 (the last text-encoder layer) to the text encoder's layer count (its first
/// layer). The pipeline and the command line check it here, so every out-of-range value, 0, −1 or one beyond the
/// model's layers, gets the same message.
/// </summary>
public static class ClipSkipRange
{
    public static bool Contains(int clipSkip, int layers) => clipSkip >= 1 && clipSkip <= layers;

    /// <summary>"must be between 1 and 12 (the text encoder's layer count)".</summary>
    public static string Describe(int layers) => $"must be between 1 and {layers} (the text encoder's layer count)";
}

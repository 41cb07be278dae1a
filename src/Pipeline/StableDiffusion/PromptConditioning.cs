using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>
/// What a prompt turns into for the whole denoising loop, batched [uncond × n; cond × n] under guidance: the hidden
/// states for cross-attention and, for SDXL, the pooled text embeddings and the time ids. Owns its tensors.
/// </summary>
internal sealed record PromptConditioning(Tensor HiddenStates, Tensor? TextEmbeds = null, Tensor? TimeIds = null) : IDisposable
{
    /// <summary>The denoiser's keyword arguments for one call (the tensors stay owned by this record).</summary>
    public DenoiserConditioning ForDenoiser() => new(HiddenStates, TextEmbeds, TimeIds);

    public void Dispose()
    {
        HiddenStates.Dispose();
        TextEmbeds?.Dispose();
        TimeIds?.Dispose();
    }
}

/// <summary>Prompt → <see cref="PromptConditioning"/>: Stable Diffusion's one text encoder, or SDXL's two with micro-conditioning.</summary>
internal interface IPromptConditioner
{
    /// <summary>The conditioning of <paramref name="images"/> images of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    PromptConditioning Encode(GenerationRequest r, int images, bool guided, int width, int height, PipelineOptions options);

    /// <summary>
    /// The same conditioner with other tokenizers (ones that know added tokens: textual-inversion embeddings): the pipeline's
    /// Tokenizer and Tokenizer2 (null but for an SDXL base).
    /// </summary>
    IPromptConditioner WithTokenizers(ClipTokenizer grown, ClipTokenizer? grown2);
}

/// <summary>Tokenising prompts into 77-token rows, shared by the SD and SDXL prompt encoders.</summary>
internal static class PromptRows
{
    /// <summary>The rows of <paramref name="prompt"/>: AUTOMATIC1111 emphasis and 75-token chunks as the request asks.</summary>
    public static List<ClipEncoding> Tokenize(ClipTokenizer tokenizer, string prompt, GenerationRequest r) =>
        tokenizer.EncodePrompt(prompt, new PromptEncodingOptions
        {
            ParseWeights = r.PromptWeighting,
            LongPrompt = r.LongPrompts ? LongPromptMode.Chunk : LongPromptMode.Truncate,
        }).Rows.ToList();

    /// <summary>
    /// Pads every list with its tokenizer's empty-prompt rows to the longest one's count (AUTOMATIC1111): rows encoded
    /// side by side (prompt and negative prompt, SDXL's two encoders) must be as many.
    /// </summary>
    public static void PadToSameCount(params (List<ClipEncoding> Rows, ClipTokenizer Tokenizer)[] lists)
    {
        var count = lists.Max(l => l.Rows.Count);
        foreach (var (rows, tokenizer) in lists)
        {
            if (rows.Count == count) continue;
            var empty = tokenizer.Encode("");
            while (rows.Count < count) rows.Add(empty);
        }
    }

    /// <summary>The row's ids [1, 77] on the device, and its emphasis weights [1, 77] unless they are all 1 (unweighted rows skip the mean-restoring rescale, whose ratio is not exactly 1 in float).</summary>
    public static (Tensor Ids, Tensor? Weights) RowTensors(ClipEncoding row, Device device)
    {
        using var ids = Tensor.From(row.InputIdsInt64(), 1, row.InputIds.Length);
        var onDevice = ids.To(device);
        return (onDevice, row.Weights.All(w => w == 1f) ? null : Tensor.From(row.Weights, 1, row.Weights.Length));
    }

    /// <summary>Each of <paramref name="n"/> images gets the same prompt: [1, …] → [n, …].</summary>
    public static Tensor Repeat(Tensor t, int n) =>
        n == 1 ? t : t.Repeat([n, .. Enumerable.Repeat(1L, t.Dim - 1)]);
}

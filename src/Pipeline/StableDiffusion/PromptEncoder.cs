using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>
/// Prompt → U-Net conditioning: tokenise (AUTOMATIC1111 emphasis and 75-token chunks optional),
/// run the CLIP text encoder per 77-token row (clip skip: hidden_states[−skip] then the final layer
/// norm, as diffusers does), apply emphasis weights, and join the rows along the sequence.
/// With guidance the result is [uncond × n; cond × n] (diffusers' order).
/// </summary>
internal sealed class PromptEncoder(ClipTokenizer tokenizer, ITextEncoder textEncoder)
{
    public Tensor Encode(GenerationRequest r, int images, bool guided, PipelineOptions options)
    {
        if (!ClipSkipRange.Contains(r.ClipSkip, textEncoder.NumLayers))
            throw new ArgumentOutOfRangeException(nameof(r.ClipSkip), r.ClipSkip, "clip skip " + ClipSkipRange.Describe(textEncoder.NumLayers));
        using var scope = DisposeScope.Enter();
        var encodingOptions = new PromptEncodingOptions
        {
            ParseWeights = r.PromptWeighting,
            LongPrompt = r.LongPrompts ? LongPromptMode.Chunk : LongPromptMode.Truncate,
        };
        var cond = tokenizer.EncodePrompt(r.Prompt, encodingOptions).Rows.ToList();
        List<ClipEncoding>? uncond = null;
        if (guided)
        {
            uncond = tokenizer.EncodePrompt(r.NegativePrompt, encodingOptions).Rows.ToList();
            // Both sides need the same number of 77-token rows: pad the shorter with empty-prompt rows (AUTOMATIC1111).
            var empty = tokenizer.Encode("");
            while (uncond.Count < cond.Count) uncond.Add(empty);
            while (cond.Count < uncond.Count) cond.Add(empty);
        }
        var c = Rows(cond, r.ClipSkip, options);
        var result = uncond is null
            ? Repeat(c, images)
            : Tensor.Cat([Repeat(Rows(uncond, r.ClipSkip, options), images), Repeat(c, images)]);
        return scope.Keep(result);
    }

    private static Tensor Repeat(Tensor t, int n) => n == 1 ? t : t.Repeat(n, 1, 1);

    private Tensor Rows(IReadOnlyList<ClipEncoding> rows, int clipSkip, PipelineOptions options)
    {
        var parts = rows.Select(row => Row(row, clipSkip, options)).ToList();
        return parts.Count == 1 ? parts[0] : Tensor.Cat(parts, 1);
    }

    private Tensor Row(ClipEncoding row, int clipSkip, PipelineOptions options)
    {
        using var ids = Tensor.From(row.InputIdsInt64(), 1, row.InputIds.Length);
        using var onDevice = ids.To(options.Device);
        // Unweighted rows skip the mean-restoring rescale, whose ratio is not exactly 1 in float.
        if (row.Weights.All(w => w == 1f)) return textEncoder.EncodePrompt(onDevice, null, clipSkip - 1);
        using var weights = Tensor.From(row.Weights, 1, row.Weights.Length);
        return textEncoder.EncodePrompt(onDevice, weights, clipSkip - 1);
    }

    /// <summary>The same encoder with another tokenizer (one that knows added tokens, e.g. textual-inversion embeddings).</summary>
    public PromptEncoder WithTokenizer(ClipTokenizer grown) => new(grown, textEncoder);
}

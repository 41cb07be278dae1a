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
internal sealed class PromptEncoder(ClipTokenizer tokenizer, ITextEncoder textEncoder) : IPromptConditioner
{
    public PromptConditioning Encode(GenerationRequest r, int images, bool guided, int width, int height, PipelineOptions options) =>
        new(Encode(r, images, guided, options));

    private Tensor Encode(GenerationRequest r, int images, bool guided, PipelineOptions options)
    {
        if (!ClipSkipRange.Contains(r.ClipSkip, textEncoder.NumLayers))
            throw new ArgumentOutOfRangeException(nameof(r.ClipSkip), r.ClipSkip, "clip skip " + ClipSkipRange.Describe(textEncoder.NumLayers));
        using var scope = DisposeScope.Enter();
        var cond = PromptRows.Tokenize(tokenizer, r.Prompt, r);
        List<ClipEncoding>? uncond = null;
        if (guided)
        {
            uncond = PromptRows.Tokenize(tokenizer, r.NegativePrompt, r);
            PromptRows.PadToSameCount((cond, tokenizer), (uncond, tokenizer));
        }
        var c = Rows(cond, r.ClipSkip, options);
        var result = uncond is null
            ? PromptRows.Repeat(c, images)
            : Tensor.Cat([PromptRows.Repeat(Rows(uncond, r.ClipSkip, options), images), PromptRows.Repeat(c, images)]);
        return scope.Keep(result);
    }

    private Tensor Rows(IReadOnlyList<ClipEncoding> rows, int clipSkip, PipelineOptions options)
    {
        var parts = rows.Select(row => Row(row, clipSkip, options)).ToList();
        return parts.Count == 1 ? parts[0] : Tensor.Cat(parts, 1);
    }

    private Tensor Row(ClipEncoding row, int clipSkip, PipelineOptions options)
    {
        var (ids, weights) = PromptRows.RowTensors(row, options.Device);
        using (ids)
        using (weights)
            return textEncoder.EncodePrompt(ids, weights, clipSkip - 1);
    }

    /// <summary>The same encoder with another tokenizer (one that knows added tokens, e.g. textual-inversion embeddings).</summary>
    public IPromptConditioner WithTokenizers(ClipTokenizer grown, ClipTokenizer? grown2) => new PromptEncoder(grown, textEncoder);
}

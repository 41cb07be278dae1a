using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.TextEncoder;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>
/// SDXL's prompt → conditioning (diffusers' StableDiffusionXLPipeline.encode_prompt and _get_add_time_ids):
/// <list type="bullet">
/// <item>each text encoder gets its own tokenizer's ids and its prompt (the first the prompt, the second prompt_2, which
/// defaults to the prompt; the refiner, with the second encoder only, gets the prompt — diffusers zips the prompts with
/// the encoders present); from each, hidden_states[−(clip skip + 2)] WITHOUT the final layer norm; concatenated on the
/// channel axis;</item>
/// <item>the pooled embedding is the last encoder's text_embeds (of the first 77-token row of a long prompt, as
/// AUTOMATIC1111 takes it);</item>
/// <item>with force_zeros_for_empty_prompt and no negative prompt, the negative embeddings are zeros;</item>
/// <item>time ids: [original_size, crops_coords_top_left, target_size] (6 values), or for a refiner
/// (requires_aesthetics_score) [original_size, crops_coords_top_left, aesthetic_score] (5).</item>
/// </list>
/// AUTOMATIC1111 emphasis and long-prompt chunks apply to each encoder as to SD's one.
/// </summary>
internal sealed class XlPromptEncoder(IReadOnlyList<(ClipTokenizer Tokenizer, ITextEncoder Encoder)> encoders, XlSettings settings) : IPromptConditioner
{
    // A refiner's one encoder is the base's second, with the pipeline's Tokenizer.
    public IPromptConditioner WithTokenizers(ClipTokenizer grown, ClipTokenizer? grown2) => new XlPromptEncoder(encoders.Count == 1
        ? [(grown, encoders[0].Encoder)]
        : [(grown, encoders[0].Encoder), (grown2 ?? throw new ArgumentNullException(nameof(grown2)), encoders[1].Encoder)], settings);

    public PromptConditioning Encode(GenerationRequest r, int images, bool guided, int width, int height, PipelineOptions options)
    {
        var x = r.Xl ?? new XlOptions();
        // diffusers' clip_skip counts layers skipped below the penultimate one; A1111's "clip skip" 1 means none.
        var skip = r.ClipSkip - 1;
        var layers = encoders.Min(e => e.Encoder.NumLayers);
        if (skip > layers - 1)
            throw new ArgumentOutOfRangeException(nameof(r.ClipSkip), r.ClipSkip, $"clip skip must be between 1 and {layers} for this SDXL model (its text encoders' layers below the last)");
        using var scope = DisposeScope.Enter();
        var prompts = new[] { r.Prompt, x.Prompt2 ?? r.Prompt };
        var cond = encoders.Select((e, i) => PromptRows.Tokenize(e.Tokenizer, prompts[i], r)).ToList();
        var zeroNegative = settings.ForceZerosForEmptyPrompt && r.NegativePrompt.Length == 0 && string.IsNullOrEmpty(x.NegativePrompt2);
        List<List<ClipEncoding>>? uncond = null;
        if (guided && !zeroNegative)
        {
            var negatives = new[] { r.NegativePrompt, x.NegativePrompt2 ?? r.NegativePrompt };
            uncond = encoders.Select((e, i) => PromptRows.Tokenize(e.Tokenizer, negatives[i], r)).ToList();
        }
        var all = cond.Concat(uncond ?? []).Select((rows, i) => (rows, encoders[i % encoders.Count].Tokenizer)).ToArray();
        PromptRows.PadToSameCount(all);

        var (hidden, pooled) = Embed(cond, skip, options);
        var (positiveIds, negativeIds) = TimeIds(x, r is ImageToImageRequest || x.DenoisingStart is not null, width, height);
        if (!guided)
            return Keep(scope, PromptRows.Repeat(hidden, images), PromptRows.Repeat(pooled, images), Ids(positiveIds, images, options));
        var (negHidden, negPooled) = uncond is null ? (Tensors.ZerosLike(hidden), Tensors.ZerosLike(pooled)) : Embed(uncond, skip, options);
        return Keep(scope,
            Tensor.Cat([PromptRows.Repeat(negHidden, images), PromptRows.Repeat(hidden, images)]),
            Tensor.Cat([PromptRows.Repeat(negPooled, images), PromptRows.Repeat(pooled, images)]),
            Tensor.Cat([Ids(negativeIds, images, options), Ids(positiveIds, images, options)]));
    }

    private static PromptConditioning Keep(DisposeScope scope, Tensor hidden, Tensor pooled, Tensor ids) =>
        new(scope.Keep(hidden), scope.Keep(pooled), scope.Keep(ids));

    // Each encoder's rows joined along the sequence, the encoders along the channels; the pooled output of the last encoder's first row.
    private (Tensor Hidden, Tensor Pooled) Embed(List<List<ClipEncoding>> rowsPerEncoder, int skip, PipelineOptions options)
    {
        var perEncoder = new List<Tensor>();
        Tensor? pooled = null;
        for (int e = 0; e < encoders.Count; e++)
        {
            var parts = new List<Tensor>();
            var rows = rowsPerEncoder[e];
            for (int i = 0; i < rows.Count; i++)
            {
                var wantPooled = e == encoders.Count - 1 && i == 0;
                var (ids, weights) = PromptRows.RowTensors(rows[i], options.Device);
                using (ids)
                using (weights)
                {
                    var state = encoders[e].Encoder.EncodeHiddenState(ids, weights, skip, wantPooled);
                    parts.Add(state.Hidden);
                    if (wantPooled) pooled = state.Pooled ?? throw new InvalidOperationException("the text encoder gave no pooled output");
                }
            }
            perEncoder.Add(parts.Count == 1 ? parts[0] : Tensor.Cat(parts, 1));
        }
        return (perEncoder.Count == 1 ? perEncoder[0] : Tensor.Cat(perEncoder, -1), pooled!);
    }

    /// <summary>
    /// The positive and negative time ids as diffusers' two pipelines make them: txt2img uses the negative sizes only when
    /// both are given; img2img defaults each negative size to the positive one and (without aesthetic scores) keeps the
    /// positive crop; a refiner conditions on the aesthetic score instead of the target size.
    /// </summary>
    private (double[] Positive, double[] Negative) TimeIds(XlOptions x, bool imageToImage, int width, int height)
    {
        var output = new PixelSize(height, width);
        var original = x.OriginalSize ?? output;
        var target = x.TargetSize ?? output;
        var crop = x.CropsCoordsTopLeft;
        var negCrop = x.NegativeCropsCoordsTopLeft;
        if (settings.RequiresAestheticsScore)
        {
            var negOriginal = x.NegativeOriginalSize ?? original;
            return ([original.Height, original.Width, crop.Top, crop.Left, x.AestheticScore],
                [negOriginal.Height, negOriginal.Width, negCrop.Top, negCrop.Left, x.NegativeAestheticScore]);
        }
        double[] positive = [original.Height, original.Width, crop.Top, crop.Left, target.Height, target.Width];
        if (imageToImage)
        {
            var (no, nt) = (x.NegativeOriginalSize ?? original, x.NegativeTargetSize ?? target);
            return (positive, [no.Height, no.Width, crop.Top, crop.Left, nt.Height, nt.Width]);
        }
        if (x.NegativeOriginalSize is { } o && x.NegativeTargetSize is { } t)
            return (positive, [o.Height, o.Width, negCrop.Top, negCrop.Left, t.Height, t.Width]);
        return (positive, positive);
    }

    private static Tensor Ids(double[] ids, int images, PipelineOptions options)
    {
        using var scope = DisposeScope.Enter();
        var row = Tensor.From(Array.ConvertAll(ids, v => (float)v), 1, ids.Length);
        return scope.Keep(PromptRows.Repeat(row, images).To(options.Device, options.DType));
    }
}

/// <summary>
/// The SDXL settings of a pipeline (model_index.json's force_zeros_for_empty_prompt, and requires_aesthetics_score of a
/// StableDiffusionXLImg2ImgPipeline: the refiner conditions on aesthetic scores instead of the target size).
/// </summary>
public sealed record XlSettings(bool ForceZerosForEmptyPrompt = true, bool RequiresAestheticsScore = false);

using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Server.Api;

/// <summary>
/// img2img with a mask (AUTOMATIC1111's inpaint tab through the API): mask (base64, white = repaint), mask_blur,
/// inpainting_fill (0 fill, 1 original, 2 latent noise, 3 latent nothing), inpaint_full_res ("Only masked") with
/// inpaint_full_res_padding, inpainting_mask_invert → the pipeline's <see cref="InpaintRequest"/>.
/// </summary>
internal static class Inpainting
{
    // A1111's inpainting_fill indices, in its order.
    private static readonly MaskedContent[] Fills = [MaskedContent.Fill, MaskedContent.Original, MaskedContent.LatentNoise, MaskedContent.LatentNothing];

    /// <summary>Checks the fields and the mask's header now; the function decodes the mask and makes the request when the job runs.</summary>
    public static Func<GenerationRequest, RgbImage, InpaintRequest> Check(ImageToImagePayload p)
    {
        const string field = "mask";
        var bytes = RequestMapping.DecodeBase64(p.Mask!, field);
        RequestMapping.CheckImage(bytes, field);
        if (p.MaskBlur is < 0 or > InpaintRequest.MaxMaskBlur) throw ApiException.Invalid($"mask_blur must be in 0..{InpaintRequest.MaxMaskBlur}, got {p.MaskBlur}");
        if (p.InpaintingFill is < 0 or > 3)
            throw ApiException.Invalid($"inpainting_fill must be 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing), got {p.InpaintingFill}");
        if (p.InpaintingMaskInvert is < 0 or > 1) throw ApiException.Invalid($"inpainting_mask_invert must be 0 (inpaint masked) or 1 (inpaint not masked), got {p.InpaintingMaskInvert}");
        if (p.InpaintFullResPadding is < 0 or > 4096) throw ApiException.Invalid($"inpaint_full_res_padding must be in 0..4096, got {p.InpaintFullResPadding}");
        return (request, init) =>
        {
            var mask = Mask(RequestMapping.DecodeImage(bytes, field, keepAlpha: true), p.InpaintingMaskInvert == 1);
            return new InpaintRequest(request, init, mask)
            {
                Strength = p.DenoisingStrength,
                MaskBlur = p.MaskBlur,
                MaskedContent = Fills[p.InpaintingFill],
                OnlyMasked = p.InpaintFullRes,
                Padding = p.InpaintFullResPadding,
            };
        };
    }

    /// <summary>
    /// The mask as A1111's create_binary_mask reads it: a transparent-edged RGBA image (what a drawing canvas exports) is its
    /// alpha channel thresholded at 128; anything else its gray levels. Inverted for inpainting_mask_invert.
    /// </summary>
    private static RgbImage Mask(RgbImage decoded, bool invert)
    {
        var n = (int)decoded.PixelCount;
        var gray = new byte[n];
        var alpha = decoded.HasAlpha && Enumerable.Range(0, n).Any(i => decoded.Pixels[i * 4 + 3] != 255);
        if (alpha)
            for (int i = 0; i < n; i++) gray[i] = decoded.Pixels[i * 4 + 3] > 128 ? (byte)255 : (byte)0;
        else
            decoded.ToRgb().ToLuma().CopyTo(gray, 0);
        if (invert)
            for (int i = 0; i < n; i++) gray[i] = (byte)(255 - gray[i]);
        return RgbImage.FromGray(decoded.Width, decoded.Height, gray);
    }
}

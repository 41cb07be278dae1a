using System.Diagnostics.CodeAnalysis;
using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>
/// What fills the masked area before denoising starts (AUTOMATIC1111's "Masked content"). As in A1111, every choice but
/// <see cref="Original"/> encodes the image with its masked pixels filled (<see cref="Imaging.MaskedFill"/>); the latent
/// ones then replace the start latents under the (binarised, nearest) latent mask, which matters at strength &lt; 1 (at
/// strength 1 the start is pure noise, as in diffusers).
/// </summary>
public enum MaskedContent
{
    /// <summary>The image itself (diffusers' behaviour, A1111's "original").</summary>
    Original,
    /// <summary>The image latents under the mask are replaced by fresh standard normal noise (A1111's "latent noise").</summary>
    LatentNoise,
    /// <summary>The image latents under the mask are zero (A1111's "latent nothing").</summary>
    LatentNothing,
    /// <summary>The masked pixels are replaced by the blurred colours around them before encoding (A1111's "fill", <see cref="Imaging.MaskedFill"/>).</summary>
    Fill,
}

/// <summary>
/// Inpainting: repaint the white part of <see cref="MaskImage"/> in <see cref="InitImage"/> (diffusers'
/// StableDiffusionInpaintPipeline). Works with inpainting U-Nets (9 input channels: latents, mask, masked-image
/// latents) and with ordinary 4-channel models (the known region is re-noised from the image and blended back after
/// every step). <see cref="GenerationRequest.Latents"/>, when given, are the noise tensor (diffusers: the start is
/// then latents · init_noise_sigma whatever the strength).
/// </summary>
public sealed record InpaintRequest : GenerationRequest
{
    public InpaintRequest()
    {
    }

    /// <summary>Inpainting of <paramref name="initImage"/> under <paramref name="maskImage"/> with every setting of <paramref name="request"/>.</summary>
    [SetsRequiredMembers]
    public InpaintRequest(GenerationRequest request, RgbImage initImage, RgbImage maskImage) : base(request)
    {
        InitImage = initImage;
        MaskImage = maskImage;
    }

    /// <summary>The image to repair. Sizing as <see cref="ImageToImageRequest.InitImage"/>.</summary>
    public required RgbImage InitImage { get; init; }

    /// <summary>
    /// White = repaint, black = keep (diffusers' polarity); read as grayscale (PIL's convert("L")) and binarised at 0.5
    /// after resizing to the output size. A mask of another size than the image is resized to the image first.
    /// </summary>
    public required RgbImage MaskImage { get; init; }

    /// <summary>How much to change the masked area: 1 (diffusers' default) starts from pure noise.</summary>
    public double Strength { get; init; } = 1.0;

    /// <summary>
    /// AUTOMATIC1111's "Mask blur": the mask is Gaussian-blurred with this σ in pixels (OpenCV's kernel of
    /// 2·⌊2.5σ + 0.5⌋ + 1 taps, horizontally then vertically) before use, and the result is pasted over the original
    /// through the blurred mask. 0 = off.
    /// </summary>
    public int MaskBlur { get; init; }

    /// <summary>The largest <see cref="MaskBlur"/>: AUTOMATIC1111's slider stops at 64 (a 321-tap kernel).</summary>
    public const int MaxMaskBlur = 64;

    /// <summary>
    /// AUTOMATIC1111's "Inpaint area: Only masked" (diffusers' padding_mask_crop): only the mask's bounding box plus
    /// <see cref="Padding"/>, widened to the output's aspect ratio, is generated at the full output size and pasted back.
    /// </summary>
    public bool OnlyMasked { get; init; }

    /// <summary>"Masked area padding" in pixels of the init image (with <see cref="OnlyMasked"/>).</summary>
    public int Padding { get; init; } = 32;

    /// <summary>What the masked area starts from (A1111's "Masked content").</summary>
    public MaskedContent MaskedContent { get; init; } = MaskedContent.Original;

    /// <summary>Also checks the inpainting settings; an override, so a call through a <see cref="GenerationRequest"/> reference checks them too.</summary>
    public override void Validate()
    {
        base.Validate();
        if (!(Strength > 0 && Strength <= 1)) throw new ArgumentOutOfRangeException(nameof(Strength), Strength, "strength must be in (0, 1]");
        if (MaskBlur is < 0 or > MaxMaskBlur) throw new ArgumentOutOfRangeException(nameof(MaskBlur), MaskBlur, $"mask blur must be between 0 and {MaxMaskBlur} pixels");
        if (Padding is < 0 or > 4096) throw new ArgumentOutOfRangeException(nameof(Padding), Padding, "masked area padding must be between 0 and 4096 pixels");
        if (!Enum.IsDefined(MaskedContent)) throw new ArgumentOutOfRangeException(nameof(MaskedContent), MaskedContent, "unknown masked content");
        ArgumentNullException.ThrowIfNull(InitImage);
        ArgumentNullException.ThrowIfNull(MaskImage);
    }
}

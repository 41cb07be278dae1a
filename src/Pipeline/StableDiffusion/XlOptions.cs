namespace LatentDiffusion.Pipeline.StableDiffusion;

/// <summary>A size in pixels in diffusers' (height, width) order.</summary>
public readonly record struct PixelSize(int Height, int Width);

/// <summary>A crop's top-left corner in pixels, diffusers' crops_coords_top_left (top, left).</summary>
public readonly record struct CropCoords(int Top, int Left);

/// <summary>
/// The request options only SDXL models use (diffusers' StableDiffusionXL(Img2Img)Pipeline arguments); a Stable Diffusion
/// 1.x/2.x model refuses a request that sets any. Null sizes default as diffusers does: original and target size to the
/// output size (for image-to-image, the init image's size after resizing).
/// </summary>
public sealed record XlOptions
{
    /// <summary>The prompt for the second text encoder (OpenCLIP ViT-bigG); null = the prompt.</summary>
    public string? Prompt2 { get; init; }

    /// <summary>The negative prompt for the second text encoder; null = the negative prompt.</summary>
    public string? NegativePrompt2 { get; init; }

    /// <summary>Micro-conditioning (Podell et al. 2023, §2.2): the size the training image had before resizing.</summary>
    public PixelSize? OriginalSize { get; init; }

    /// <summary>Micro-conditioning: the crop's top-left corner (0, 0 gives centred, uncropped-looking images).</summary>
    public CropCoords CropsCoordsTopLeft { get; init; }

    /// <summary>Micro-conditioning: the target size.</summary>
    public PixelSize? TargetSize { get; init; }

    /// <summary>The unconditional half's original size (negative conditioning); null = <see cref="OriginalSize"/>.</summary>
    public PixelSize? NegativeOriginalSize { get; init; }

    public CropCoords NegativeCropsCoordsTopLeft { get; init; }

    /// <summary>The unconditional half's target size; null = <see cref="TargetSize"/>.</summary>
    public PixelSize? NegativeTargetSize { get; init; }

    /// <summary>The refiner's aesthetic-score conditioning (requires_aesthetics_score models), diffusers' default 6.0.</summary>
    public double AestheticScore { get; init; } = 6.0;

    /// <summary>The refiner's aesthetic score for the unconditional half, diffusers' default 2.5.</summary>
    public double NegativeAestheticScore { get; init; } = 2.5;

    /// <summary>
    /// Stop this fraction of the way through the schedule and return the latents still noisy (diffusers' denoising_end,
    /// the base's half of a base → refiner hand-off); null = denoise to the end.
    /// </summary>
    public double? DenoisingEnd { get; init; }

    /// <summary>
    /// Start this fraction of the way through the schedule from the given latents without adding noise (diffusers'
    /// denoising_start, the refiner's half of the hand-off); null = start as the mode does.
    /// </summary>
    public double? DenoisingStart { get; init; }

    public void Validate()
    {
        if (DenoisingEnd is { } end && !(end > 0 && end < 1)) throw new ArgumentOutOfRangeException(nameof(DenoisingEnd), end, "denoising end must be in (0, 1)");
        if (DenoisingStart is { } start && !(start > 0 && start < 1)) throw new ArgumentOutOfRangeException(nameof(DenoisingStart), start, "denoising start must be in (0, 1)");
        if (DenoisingStart is { } s && DenoisingEnd is { } e && !(s < e))
            throw new ArgumentOutOfRangeException(nameof(DenoisingStart), s, $"denoising start ({s}) must be below denoising end ({e})");
        if (!double.IsFinite(AestheticScore)) throw new ArgumentOutOfRangeException(nameof(AestheticScore), AestheticScore, "aesthetic score must be finite");
        if (!double.IsFinite(NegativeAestheticScore)) throw new ArgumentOutOfRangeException(nameof(NegativeAestheticScore), NegativeAestheticScore, "negative aesthetic score must be finite");
        foreach (var (size, name) in new[] { (OriginalSize, "original size"), (TargetSize, "target size"), (NegativeOriginalSize, "negative original size"), (NegativeTargetSize, "negative target size") })
        {
            if (size is { } s2 && (s2.Height <= 0 || s2.Width <= 0)) throw new ArgumentOutOfRangeException(nameof(OriginalSize), size, $"{name} must be positive");
        }
    }
}

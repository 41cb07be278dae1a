using LatentDiffusion.Pipeline.Engines;
using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Pipeline.StableDiffusion;

// ControlNet: any request (text-to-image, image-to-image) may be steered by ControlNets (diffusers'
// StableDiffusionControlNetPipeline; several at once = its MultiControlNetModel).
public partial record GenerationRequest
{
    /// <summary>The ControlNets that steer the composition, each with its control image; their residuals are summed.</summary>
    public IReadOnlyList<ControlNetUnit> ControlNets { get; init; } = [];

    /// <summary>
    /// diffusers' guess_mode: the ControlNets see only the conditional half of the guidance batch (the unconditional half
    /// gets no residuals) and scale their residuals from 0.1 to 1 on a log ramp, so that they steer without a prompt.
    /// </summary>
    public bool GuessMode { get; init; }

    private void ValidateControlNets()
    {
        for (int i = 0; i < ControlNets.Count; i++) ControlNets[i].Validate(i);
    }
}

/// <summary>
/// One ControlNet with its control image (an edge map, a depth map, a pose skeleton; or a photo and the
/// <see cref="Preprocessor"/> that makes one), diffusers' controlnet_conditioning_scale and control_guidance_start/end. The
/// image is fitted to the output size as <see cref="ResizeMode"/> says.
/// </summary>
public sealed record ControlNetUnit(IControlNet Model, RgbImage Image)
{
    /// <summary>controlnet_conditioning_scale: multiplies every residual (A1111's "Weight").</summary>
    public double Scale { get; init; } = 1.0;

    /// <summary>control_guidance_start: the fraction of the steps after which the ControlNet starts steering.</summary>
    public double GuidanceStart { get; init; }

    /// <summary>control_guidance_end: the fraction of the steps after which it stops.</summary>
    public double GuidanceEnd { get; init; } = 1.0;

    /// <summary>
    /// How <see cref="Image"/> is fitted to the output size (AUTOMATIC1111's ControlNet "Resize Mode"); the default is
    /// diffusers' stretch (the extension's default, <see cref="ControlResizeMode.CropAndResize"/>, is what <c>ldm</c> and
    /// <c>ldm serve</c> pass).
    /// </summary>
    public ControlResizeMode ResizeMode { get; init; } = ControlResizeMode.JustResize;

    /// <summary>
    /// Turns <see cref="Image"/> (a photo), after it is resized to the output size, into the control image (e.g.
    /// <see cref="Preprocessors.CannyPreprocessor"/>); null: <see cref="Image"/> is the control image itself.
    /// </summary>
    public Preprocessors.IControlPreprocessor? Preprocessor { get; init; }

    internal void Validate(int index)
    {
        ArgumentNullException.ThrowIfNull(Model);
        ArgumentNullException.ThrowIfNull(Image);
        var name = $"ControlNet {index} ({Model.Name})";
        if (!Enum.IsDefined(ResizeMode)) throw new ArgumentOutOfRangeException(nameof(ResizeMode), ResizeMode, $"{name}: unknown resize mode");
        if (!(Scale >= 0 && Scale <= 10)) throw new ArgumentOutOfRangeException(nameof(Scale), Scale, $"{name}: conditioning scale must be in [0, 10]");
        if (!(GuidanceStart >= 0 && GuidanceStart < GuidanceEnd && GuidanceEnd <= 1))
            throw new ArgumentOutOfRangeException(nameof(GuidanceStart), (GuidanceStart, GuidanceEnd),
                $"{name}: control guidance start ({GuidanceStart}) must be below its end ({GuidanceEnd}), both in [0, 1]");
    }
}

/// <summary>AUTOMATIC1111's ControlNet resize modes that this pipeline implements.</summary>
public enum ControlResizeMode
{
    /// <summary>Stretch the image to the output size (diffusers' prepare_image; the extension's "Just Resize").</summary>
    JustResize,

    /// <summary>Crop the centre to the output's aspect ratio, then resize (the extension's "Crop and Resize", its default).</summary>
    CropAndResize,

    /// <summary>
    /// Fit the whole image inside the output and fill the rest with the median colour of the map's border (the extension's
    /// "Resize and Fill", its ResizeMode.OUTER_FIT).
    /// </summary>
    ResizeAndFill,
}

/// <summary>The resize modes' names as AUTOMATIC1111's ControlNet extension writes and reads them.</summary>
public static class ControlResizeModes
{
    /// <summary>The extension's names in its order (its API takes the index 0, 1, 2 or the name).</summary>
    public static IReadOnlyList<string> Names { get; } = ["Just Resize", "Crop and Resize", "Resize and Fill"];

    /// <summary>"Just Resize", "Crop and Resize" or "Resize and Fill".</summary>
    public static string Name(this ControlResizeMode mode) => Names[(int)mode];
}

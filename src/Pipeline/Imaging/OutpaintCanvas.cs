namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Pixels to add on each side of an image before outpainting.</summary>
public sealed record CanvasExtension(int Left = 0, int Top = 0, int Right = 0, int Bottom = 0)
{
    /// <summary>Throws unless every side is between 0 and <paramref name="max"/> and at least one is positive.</summary>
    public void Validate(int max = 4096)
    {
        foreach (var (side, value) in new[] { ("left", Left), ("top", Top), ("right", Right), ("bottom", Bottom) })
            if (value < 0 || value > max) throw new ArgumentOutOfRangeException(side, value, $"the {side} extension must be between 0 and {max} pixels");
        if (Left + Top + Right + Bottom == 0) throw new ArgumentException("the extension adds nothing: give at least one side a positive number of pixels");
    }
}

/// <summary>
/// Outpainting as inpainting of a larger canvas (A1111's "Poor man's outpainting"): the image is placed on a canvas
/// extended by <see cref="CanvasExtension"/>, the new area is filled by stretching the image's edge pixels outwards
/// (each new pixel takes the nearest original pixel, OpenCV's BORDER_REPLICATE: it gives the model the colours at the
/// border; A1111's outpainting mk2 fills with colour-matched noise instead), and the mask is white over the new area
/// and over a seam of 2 × mask blur pixels into the image on each extended side, so the join is repainted.
/// </summary>
public static class OutpaintCanvas
{
    /// <summary>
    /// The extended canvas and its mask. Each dimension is rounded up to a multiple of <paramref name="multiple"/> by
    /// extending an extended side further (right before left, bottom before top), so the pipeline need not resize it.
    /// </summary>
    public static (RgbImage Canvas, RgbImage Mask) Extend(RgbImage image, CanvasExtension extension, int maskBlur, int multiple = 8)
    {
        extension.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(maskBlur);
        var e = RoundUp(extension, image.Width, image.Height, multiple);
        int width = image.Width + e.Left + e.Right, height = image.Height + e.Top + e.Bottom;
        _ = RgbImage.BufferLength(width, height);
        var source = image.ToRgb();
        var canvas = RgbImage.Filled(width, height, Rgb.Black);
        for (int y = 0; y < height; y++)
        {
            int sy = Math.Clamp(y - e.Top, 0, image.Height - 1);
            for (int x = 0; x < width; x++)
            {
                int sx = Math.Clamp(x - e.Left, 0, image.Width - 1);
                Array.Copy(source.Pixels, (sy * image.Width + sx) * 3, canvas.Pixels, (y * width + x) * 3, 3);
            }
        }

        // Black (keep) over the image, inset by the seam on the extended sides; white (repaint) elsewhere.
        int seam = 2 * maskBlur;
        int keepLeft = e.Left + (e.Left > 0 ? seam : 0), keepTop = e.Top + (e.Top > 0 ? seam : 0);
        int keepRight = e.Left + image.Width - (e.Right > 0 ? seam : 0), keepBottom = e.Top + image.Height - (e.Bottom > 0 ? seam : 0);
        var mask = RgbImage.Filled(width, height, Rgb.White);
        for (int y = keepTop; y < keepBottom; y++)
            for (int x = keepLeft; x < keepRight; x++) mask.SetPixel(x, y, Rgb.Black);
        return (canvas, mask);
    }

    private static CanvasExtension RoundUp(CanvasExtension e, int width, int height, int multiple)
    {
        int dx = (multiple - (width + e.Left + e.Right) % multiple) % multiple;
        int dy = (multiple - (height + e.Top + e.Bottom) % multiple) % multiple;
        if (e.Right > 0) e = e with { Right = e.Right + dx };
        else if (e.Left > 0) e = e with { Left = e.Left + dx };
        if (e.Bottom > 0) e = e with { Bottom = e.Bottom + dy };
        else if (e.Top > 0) e = e with { Top = e.Top + dy };
        return e;
    }
}

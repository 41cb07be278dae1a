namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// The image side of inpainting: masks as grayscale images (white = repaint), AUTOMATIC1111's mask blur, diffusers'
/// crop region for padding_mask_crop ("inpaint only masked") and its paste-back of the result over the original.
/// A mask is kept as an RGB image whose three channels are equal, so the ordinary resizing and cropping apply.
/// </summary>
public static class InpaintMask
{
    /// <summary>The mask as grayscale (PIL's convert("L"), alpha dropped), stored as an RGB image of equal channels.</summary>
    public static RgbImage ToGray(RgbImage mask) => RgbImage.FromGray(mask.Width, mask.Height, mask.ToLuma());

    /// <summary>
    /// The mask as the pipeline uses it: grayscale, resized (Lanczos, as diffusers' mask processor) to
    /// <paramref name="width"/> × <paramref name="height"/> when its size differs, blurred by <paramref name="blur"/>;
    /// an all-black result (nothing to repaint) is refused in one line.
    /// </summary>
    public static RgbImage Prepare(RgbImage mask, int width, int height, int blur)
    {
        var gray = ToGray(mask);
        if (gray.Width != width || gray.Height != height) gray = gray.Resize(width, height);
        gray = Blur(gray, blur);
        if (IsEmpty(gray))
            throw new ArgumentException("the mask is all black: nothing to inpaint (white marks the area to repaint)", "MaskImage");
        return gray;
    }

    /// <summary>True when no pixel would be repainted: every gray value is below 0.5 · 255 (diffusers binarises at 0.5).</summary>
    public static bool IsEmpty(RgbImage grayMask)
    {
        for (int i = 0; i < grayMask.Pixels.Length; i += grayMask.Channels)
            if (grayMask.Pixels[i] >= 128) return false;
        return true;
    }

    /// <summary>
    /// AUTOMATIC1111's mask blur: cv2.GaussianBlur with σ = <paramref name="sigma"/> and 2·⌊2.5σ + 0.5⌋ + 1 taps, first
    /// along x, then along y (two calls, each rounded to 8 bits), with OpenCV's default border (reflect 101) and its
    /// bit-exact 8-bit arithmetic: weights in 1/256 (<see cref="FixedPointKernel"/>), sums rounded half up.
    /// </summary>
    public static RgbImage Blur(RgbImage grayMask, int sigma)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sigma);
        if (sigma == 0) return grayMask;
        int w = grayMask.Width, h = grayMask.Height;
        var gray = new byte[w * h];
        for (int i = 0; i < gray.Length; i++) gray[i] = grayMask.Pixels[i * grayMask.Channels];
        var kernel = FixedPointKernel(2 * (int)(2.5 * sigma + 0.5) + 1, sigma);
        var horizontal = Convolve(gray, w, h, kernel, alongX: true);
        return RgbImage.FromGray(w, h, Convolve(horizontal, w, h, kernel, alongX: false));
    }

    /// <summary>
    /// OpenCV's 8-bit Gaussian kernel (getGaussianKernelBitExact, then getGaussianKernelFixedPoint_ED): exp(−x²/2σ²)
    /// normalised to sum 1, scaled to 1/256 units from the outer taps inwards with the rounding error carried to the
    /// next tap, and the centre tap taking what is left of 256.
    /// </summary>
    internal static int[] FixedPointKernel(int size, double sigma)
    {
        int half = size / 2;
        var values = new double[half];
        double sum = 1; // the centre, exp(0)
        for (int i = 0, x = 1 - size; i < half; i++, x += 2)
        {
            // x runs over 2·(i − (size − 1)/2), so x²·(−1/8σ²) = −(i − c)²/2σ²
            values[i] = Math.Exp(x * x * (-0.125 / (sigma * sigma)));
            sum += 2 * values[i];
        }
        var kernel = new int[size];
        double error = 0;
        int total = 0;
        for (int i = 0; i < half; i++)
        {
            double adjusted = values[i] / sum * 256 + error;
            int v = (int)Math.Round(adjusted, MidpointRounding.ToEven); // cvRound
            error = adjusted - v;
            kernel[i] = kernel[size - 1 - i] = v;
            total += 2 * v;
        }
        kernel[half] = 256 - total;
        return kernel;
    }

    private static byte[] Convolve(byte[] source, int w, int h, int[] kernel, bool alongX)
    {
        var result = new byte[source.Length];
        int radius = kernel.Length / 2, length = alongX ? w : h;
        // rows are independent: a 64-pixel blur of a large mask is 321 taps per pixel and pass
        Parallel.For(0, h, y =>
        {
            for (int x = 0; x < w; x++)
            {
                int at = alongX ? x : y, sum = 0;
                for (int k = 0; k < kernel.Length; k++)
                {
                    int j = Reflect101(at + k - radius, length);
                    sum += kernel[k] * source[alongX ? y * w + j : j * w + x];
                }
                result[y * w + x] = (byte)Math.Min(255, (sum + 128) >> 8);
            }
        });
        return result;
    }

    // OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), repeated for kernels wider than the image.
    private static int Reflect101(int i, int length)
    {
        if (length == 1) return 0;
        while (i < 0 || i >= length) i = i < 0 ? -i : 2 * length - 2 - i;
        return i;
    }

    /// <summary>
    /// diffusers' VaeImageProcessor.get_crop_region: the bounding box of the mask's non-zero pixels, grown by
    /// <paramref name="padding"/> (clipped to the image), then widened along one axis to the aspect ratio
    /// <paramref name="width"/> : <paramref name="height"/> of the size it will be processed at, shifted to stay inside.
    /// Returns x1, y1, x2, y2 (exclusive). An all-black mask has no region: the caller refuses it first.
    /// </summary>
    public static (int X1, int Y1, int X2, int Y2) CropRegion(RgbImage grayMask, int width, int height, int padding)
    {
        int w = grayMask.Width, h = grayMask.Height;
        int left = w, right = -1, top = h, bottom = -1;
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                if (grayMask.Pixels[(y * w + x) * grayMask.Channels] == 0) continue;
                left = Math.Min(left, x);
                right = Math.Max(right, x);
                top = Math.Min(top, y);
                bottom = Math.Max(bottom, y);
            }
        }
        if (right < 0) throw new ArgumentException("the mask is all black: it has no area to crop around");
        int x1 = Math.Max(left - padding, 0), y1 = Math.Max(top - padding, 0);
        int x2 = Math.Min(right + 1 + padding, w), y2 = Math.Min(bottom + 1 + padding, h);

        double ratioProcessing = (double)width / height;
        if ((double)(x2 - x1) / (y2 - y1) > ratioProcessing)
        {
            int diff = (int)((x2 - x1) / ratioProcessing - (y2 - y1));
            (y1, y2) = Widen(y1, y2, diff, h);
        }
        else
        {
            int diff = (int)((y2 - y1) * ratioProcessing - (x2 - x1));
            (x1, x2) = Widen(x1, x2, diff, w);
        }
        return (x1, y1, x2, y2);
    }

    // diffusers: grow by diff (half before, the rest after), move back inside [0, size], clip the far end.
    private static (int Start, int End) Widen(int start, int end, int diff, int size)
    {
        start -= diff / 2;
        end += diff - diff / 2;
        if (end >= size)
        {
            start -= end - size;
            end = size;
        }
        if (start < 0)
        {
            end -= start;
            start = 0;
        }
        return (start, Math.Min(end, size));
    }

    /// <summary>
    /// diffusers' apply_overlay (and A1111's overlay): the original wherever the mask is black, the generated image
    /// where it is white, mixed by the gray level in between. With <paramref name="crop"/> the generated image covers
    /// only that region of the original (resized to it, "crop" mode); elsewhere the original stays.
    /// </summary>
    public static RgbImage Overlay(RgbImage original, RgbImage grayMask, RgbImage generated, (int X1, int Y1, int X2, int Y2)? crop = null)
    {
        original = original.ToRgb();
        var (x1, y1, x2, y2) = crop ?? (0, 0, original.Width, original.Height);
        int cw = x2 - x1, ch = y2 - y1;
        var placed = generated.Width == cw && generated.Height == ch ? generated.ToRgb() : generated.ToRgb().ResizeAndCrop(cw, ch);
        var result = original.Clone();
        for (int y = y1; y < y2; y++)
        {
            for (int x = x1; x < x2; x++)
            {
                int m = grayMask.Pixels[(y * grayMask.Width + x) * grayMask.Channels];
                if (m == 0) continue;
                int o = (y * original.Width + x) * 3, g = ((y - y1) * cw + (x - x1)) * 3;
                for (int c = 0; c < 3; c++)
                    result.Pixels[o + c] = (byte)((original.Pixels[o + c] * (255 - m) + placed.Pixels[g + c] * m + 127) / 255);
            }
        }
        return result;
    }
}

using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Pipeline.Preprocessors;

/// <summary>
/// Gaussian smoothing of an 8-bit image as OpenCV's <c>cv2.GaussianBlur(image, (0, 0), σ)</c> sizes it: a separable kernel
/// of ⌊6σ + 1⌉ | 1 taps (OpenCV's width for 8-bit images), reflected borders (BORDER_REFLECT_101), computed in floating
/// point and rounded (OpenCV's 8-bit path is fixed point, so a value may differ from it by one level).
/// </summary>
public static class GaussianBlur
{
    public static RgbImage Apply(RgbImage image, double sigma)
    {
        var rgb = image.ToRgb();
        int w = rgb.Width, h = rgb.Height;
        var kernel = Kernel(sigma);
        int r = kernel.Length / 2;
        var horizontal = new double[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                {
                    double sum = 0;
                    for (int k = -r; k <= r; k++) sum += kernel[k + r] * rgb.Pixels[(y * w + Reflect(x + k, w)) * 3 + c];
                    horizontal[(y * w + x) * 3 + c] = sum;
                }
        var result = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                {
                    double sum = 0;
                    for (int k = -r; k <= r; k++) sum += kernel[k + r] * horizontal[(Reflect(y + k, h) * w + x) * 3 + c];
                    result[(y * w + x) * 3 + c] = (byte)Math.Clamp(Math.Round(sum, MidpointRounding.ToEven), 0, 255);
                }
        return new RgbImage(w, h, result);
    }

    /// <summary>The normalised taps exp(−k² / 2σ²) for k = −r … r.</summary>
    public static double[] Kernel(double sigma)
    {
        int size = (int)Math.Round(sigma * 3 * 2 + 1, MidpointRounding.ToEven) | 1;
        int r = size / 2;
        var taps = Enumerable.Range(-r, size).Select(k => Math.Exp(-(double)k * k / (2 * sigma * sigma))).ToArray();
        var total = taps.Sum();
        return taps.Select(t => t / total).ToArray();
    }

    // BORDER_REFLECT_101: …, 2, 1 | 0, 1, 2, … (the edge pixel is not repeated)
    private static int Reflect(int i, int n)
    {
        if (n == 1) return 0;
        while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
        return i;
    }
}

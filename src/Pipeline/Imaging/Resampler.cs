namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Resampling filters, with Pillow's definitions (Lanczos is what diffusers resizes inputs with).</summary>
public enum ResizeFilter { Nearest, Box, Bilinear, Bicubic, Lanczos }

/// <summary>
/// Pillow's separable resampler (Resample.c): the filter widens with the downscale factor, so
/// shrinking averages every source pixel (area-like), and 8-bit passes use the same 22-bit fixed
/// point coefficients and rounding, giving the bytes Pillow's Image.resize gives.
/// </summary>
internal static class Resampler
{
    private const int PrecisionBits = 32 - 8 - 2;

    public static byte[] Resize(byte[] pixels, int width, int height, int channels, int newWidth, int newHeight, ResizeFilter filter)
    {
        if (filter == ResizeFilter.Nearest) return Nearest(pixels, width, height, channels, newWidth, newHeight);
        var (support, kernel) = Kernel(filter);
        var current = pixels;
        int currentWidth = width;
        if (newWidth != width)
        {
            current = Horizontal(current, currentWidth, height, channels, newWidth, Coefficients(width, newWidth, support, kernel));
            currentWidth = newWidth;
        }
        if (newHeight != height)
            current = Vertical(current, currentWidth, height, channels, newHeight, Coefficients(height, newHeight, support, kernel));
        return ReferenceEquals(current, pixels) ? (byte[])pixels.Clone() : current;
    }

    private static (double Support, Func<double, double> Kernel) Kernel(ResizeFilter filter) => filter switch
    {
        ResizeFilter.Box => (0.5, x => x > -0.5 && x <= 0.5 ? 1.0 : 0.0),
        ResizeFilter.Bilinear => (1.0, x => Math.Abs(x) < 1.0 ? 1.0 - Math.Abs(x) : 0.0),
        ResizeFilter.Bicubic => (2.0, Bicubic),
        ResizeFilter.Lanczos => (3.0, x => -3.0 <= x && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0),
        _ => throw new ArgumentOutOfRangeException(nameof(filter), filter, "unknown resize filter"),
    };

    private static double Bicubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    /// <summary>For each output position: the first source index and fixed-point weights.</summary>
    private static (int Start, int[] Weights)[] Coefficients(int inSize, int outSize, double filterSupport, Func<double, double> kernel)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = filterSupport * filterScale;
        double ss = 1.0 / filterScale;
        var result = new (int, int[])[outSize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            var k = new double[xmax];
            double sum = 0;
            for (int x = 0; x < xmax; x++) sum += k[x] = kernel((x + xmin - center + 0.5) * ss);
            var fixedPoint = new int[xmax];
            for (int x = 0; x < xmax; x++)
            {
                double w = sum != 0.0 ? k[x] / sum : k[x];
                fixedPoint[x] = (int)(w < 0 ? -0.5 + w * (1 << PrecisionBits) : 0.5 + w * (1 << PrecisionBits));
            }
            result[xx] = (xmin, fixedPoint);
        }
        return result;
    }

    private static byte Clip8(int value)
    {
        int v = value >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    private static byte[] Horizontal(byte[] source, int width, int height, int channels, int newWidth, (int Start, int[] Weights)[] coefficients)
    {
        var output = new byte[newWidth * height * channels];
        Parallel.For(0, height, y =>
        {
            int row = y * width * channels, outRow = y * newWidth * channels;
            for (int xx = 0; xx < newWidth; xx++)
            {
                var (start, weights) = coefficients[xx];
                for (int c = 0; c < channels; c++)
                {
                    int sum = 1 << (PrecisionBits - 1);
                    for (int x = 0; x < weights.Length; x++) sum += source[row + (start + x) * channels + c] * weights[x];
                    output[outRow + xx * channels + c] = Clip8(sum);
                }
            }
        });
        return output;
    }

    private static byte[] Vertical(byte[] source, int width, int height, int channels, int newHeight, (int Start, int[] Weights)[] coefficients)
    {
        int rowBytes = width * channels;
        var output = new byte[newHeight * rowBytes];
        Parallel.For(0, newHeight, yy =>
        {
            var (start, weights) = coefficients[yy];
            for (int i = 0; i < rowBytes; i++)
            {
                int sum = 1 << (PrecisionBits - 1);
                for (int y = 0; y < weights.Length; y++) sum += source[(start + y) * rowBytes + i] * weights[y];
                output[yy * rowBytes + i] = Clip8(sum);
            }
        });
        return output;
    }

    // Pillow's NEAREST samples the source pixel under each output pixel's centre.
    private static byte[] Nearest(byte[] source, int width, int height, int channels, int newWidth, int newHeight)
    {
        var output = new byte[newWidth * newHeight * channels];
        double sx = (double)width / newWidth, sy = (double)height / newHeight;
        for (int y = 0; y < newHeight; y++)
        {
            int srcY = Math.Min((int)((y + 0.5) * sy), height - 1);
            for (int x = 0; x < newWidth; x++)
            {
                int srcX = Math.Min((int)((x + 0.5) * sx), width - 1);
                Array.Copy(source, (srcY * width + srcX) * channels, output, (y * newWidth + x) * channels, channels);
            }
        }
        return output;
    }

    /// <summary>Pillow's RGBA → RGBa: colour scaled by alpha, so transparent pixels do not bleed when filtered.</summary>
    public static byte[] Premultiply(byte[] rgba)
    {
        var output = new byte[rgba.Length];
        for (int i = 0; i < rgba.Length; i += 4)
        {
            int alpha = rgba[i + 3];
            for (int c = 0; c < 3; c++)
            {
                int t = rgba[i + c] * alpha + 128;
                output[i + c] = (byte)(((t >> 8) + t) >> 8);
            }
            output[i + 3] = (byte)alpha;
        }
        return output;
    }

    /// <summary>Pillow's RGBa → RGBA.</summary>
    public static void Unpremultiply(byte[] rgba)
    {
        for (int i = 0; i < rgba.Length; i += 4)
        {
            int alpha = rgba[i + 3];
            if (alpha is 0 or 255) continue;
            for (int c = 0; c < 3; c++) rgba[i + c] = (byte)Math.Min(255, 255 * rgba[i + c] / alpha);
        }
    }
}

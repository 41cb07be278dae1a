namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// AUTOMATIC1111's "Masked content: fill" (modules/masking.py): the masked area is replaced by the colours around it.
/// The unmasked pixels (premultiplied by 1 − mask) are Gaussian-blurred at radii 256, 64, 16, 4, 2 and 0 and each blur is
/// alpha-composited over the previous ones (16 twice, 4 four times, 2 twice), so far-away colours fill what near ones do
/// not reach. Pillow's arithmetic throughout (its Gaussian blur is three box blurs of a fractional radius).
/// </summary>
public static class MaskedFill
{
    private static readonly (float Radius, int Repeats)[] Passes = [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)];

    /// <summary>The image with the area under <paramref name="grayMask"/> (white = masked) filled; the same size, RGB.</summary>
    public static RgbImage Fill(RgbImage image, RgbImage grayMask)
    {
        if (grayMask.Width != image.Width || grayMask.Height != image.Height)
            throw new ArgumentException($"the mask is {grayMask.Width}x{grayMask.Height} but the image {image.Width}x{image.Height}");
        int w = image.Width, h = image.Height;
        var rgb = image.ToRgb().Pixels;
        // RGBa: paste(image, mask = 255 − mask) onto transparent black = each channel · (255 − m) / 255, alpha 255 − m
        var masked = new byte[w * h * 4];
        for (int p = 0; p < w * h; p++)
        {
            int keep = 255 - grayMask.Pixels[p * grayMask.Channels];
            for (int c = 0; c < 3; c++) masked[4 * p + c] = Div255(rgb[3 * p + c] * keep);
            masked[4 * p + 3] = Div255(255 * keep);
        }
        var result = new byte[w * h * 4]; // RGBA, transparent
        foreach (var (radius, repeats) in Passes)
        {
            var blurred = Unpremultiply(GaussianBlur(masked, w, h, radius));
            for (int i = 0; i < repeats; i++) AlphaComposite(result, blurred);
        }
        var output = new byte[w * h * 3];
        for (int p = 0; p < w * h; p++)
            for (int c = 0; c < 3; c++) output[3 * p + c] = result[4 * p + c];
        return new RgbImage(w, h, output);
    }

    // Pillow's DIV255: (a + 128) · 257 / 65536, exact for products of two bytes
    private static byte Div255(int a)
    {
        a += 128;
        return (byte)(((a >> 8) + a) >> 8);
    }

    /// <summary>ImageFilter.GaussianBlur(radius): 3 box blurs along x, then 3 along y, of the radius Pillow derives (in float).</summary>
    private static byte[] GaussianBlur(byte[] rgba, int w, int h, float radius)
    {
        var box = BoxRadius(radius);
        if (box == 0) return (byte[])rgba.Clone();
        var horizontal = (byte[])rgba.Clone();
        for (int pass = 0; pass < 3; pass++) BoxBlurLines(horizontal, w, h, box, alongX: true);
        for (int pass = 0; pass < 3; pass++) BoxBlurLines(horizontal, w, h, box, alongX: false);
        return horizontal;
    }

    // Pillow's _gaussian_blur_radius (Gwosdek et al. 2011): the box radius whose 3 passes have the Gaussian's variance.
    private static float BoxRadius(float radius)
    {
        float sigma2 = radius * radius / 3;
        float length = (float)Math.Sqrt(12.0 * sigma2 + 1.0);
        float whole = (float)Math.Floor((length - 1.0) / 2.0);
        float fraction = (2 * whole + 1) * (whole * (whole + 1) - 3 * sigma2);
        fraction /= 6 * (sigma2 - (whole + 1) * (whole + 1));
        return whole + fraction;
    }

    /// <summary>
    /// One box-blur pass over every line (rows, or columns), in place: a window of 2r + 1 pixels of weight ww (in 1/2²⁴)
    /// plus the two next pixels at the fractional weight fw, edge pixels repeated beyond the ends; rounded to bytes.
    /// </summary>
    private static void BoxBlurLines(byte[] rgba, int w, int h, float floatRadius, bool alongX)
    {
        int radius = (int)floatRadius;
        uint ww = (uint)((float)(1 << 24) / (floatRadius * 2 + 1));
        uint fw = ((1u << 24) - (uint)(radius * 2 + 1) * ww) / 2;
        int length = alongX ? w : h, lines = alongX ? h : w;
        var line = new byte[length * 4];
        var output = new byte[length * 4];
        for (int l = 0; l < lines; l++)
        {
            for (int i = 0; i < length; i++)
                Array.Copy(rgba, Offset(l, i), line, 4 * i, 4);
            for (int c = 0; c < 4; c++) BlurLine(line, output, c, length - 1, radius, ww, fw);
            for (int i = 0; i < length; i++)
                Array.Copy(output, 4 * i, rgba, Offset(l, i), 4);
        }

        int Offset(int lineIndex, int i) => alongX ? 4 * (lineIndex * w + i) : 4 * (i * w + lineIndex);
    }

    // One channel of Pillow's ImagingLineBoxBlur: a running sum whose window is clamped to the line.
    private static void BlurLine(byte[] line, byte[] output, int c, int last, int radius, uint ww, uint fw)
    {
        uint At(int i) => line[4 * Math.Clamp(i, 0, last) + c];
        uint acc = At(0) * (uint)(radius + 1);
        for (int i = 0; i < radius; i++) acc += At(i); // pixels 0 … radius − 1, the last one repeated past the end
        for (int x = 0; x <= last; x++)
        {
            acc += At(x + radius);
            acc -= At(x - radius - 1);
            uint bulk = acc * ww + (At(x - radius - 1) + At(x + radius + 1)) * fw;
            output[4 * x + c] = (byte)((bulk + (1u << 23)) >> 24);
        }
    }

    // Pillow's RGBa → RGBA: colour · 255 / alpha (floor), left as it is at alpha 0 and 255
    private static byte[] Unpremultiply(byte[] rgba)
    {
        for (int p = 0; p < rgba.Length; p += 4)
        {
            int alpha = rgba[p + 3];
            if (alpha is 0 or 255) continue;
            for (int c = 0; c < 3; c++) rgba[p + c] = (byte)Math.Min(255, 255 * rgba[p + c] / alpha);
        }
        return rgba;
    }

    // Pillow's ImagingAlphaComposite (source over destination, in place on the destination), 7 extra bits of precision
    private static void AlphaComposite(byte[] destination, byte[] source)
    {
        const int precision = 7;
        for (int p = 0; p < destination.Length; p += 4)
        {
            uint srcA = source[p + 3];
            if (srcA == 0) continue;
            uint blend = destination[p + 3] * (255 - srcA);
            uint outA255 = srcA * 255 + blend;
            uint coef1 = srcA * 255 * 255 * (1u << precision) / outA255;
            uint coef2 = 255 * (1u << precision) - coef1;
            for (int c = 0; c < 3; c++)
            {
                uint tmp = source[p + c] * coef1 + destination[p + c] * coef2 + (0x80u << precision);
                destination[p + c] = (byte)((((tmp >> 8) + tmp) >> 8) >> precision);
            }
            uint a = outA255 + 0x80;
            destination[p + 3] = (byte)(((a >> 8) + a) >> 8);
        }
    }
}

using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Pipeline.Preprocessors;

/// <summary>
/// The Canny edge detector (Canny 1986) as OpenCV's <c>cv2.Canny(image, low, high)</c> computes it — what AUTOMATIC1111's
/// ControlNet extension and controlnet_aux's CannyDetector run on the RGB image to make a canny ControlNet's control image:
/// <list type="number">
/// <item>optional Gaussian smoothing (σ; 0 = none: cv2.Canny itself does not blur, and neither do those preprocessors);</item>
/// <item>3×3 Sobel derivatives per channel with replicated borders; per pixel the channel of largest L1 magnitude
/// |dx| + |dy| gives the gradient (OpenCV's rule for colour images, the first channel on ties);</item>
/// <item>non-maximum suppression along the gradient quantised to 0°, 45°, 90°, 135° with OpenCV's fixed-point tangent
/// test and its asymmetric comparisons (&gt; one neighbour, ≥ the other on the axes; &gt; both on diagonals);</item>
/// <item>hysteresis: pixels above <c>high</c> are edges, pixels above <c>low</c> are edges when 8-connected to one.</item>
/// </list>
/// The result is white (255) edges on black, replicated to three channels (controlnet_aux's HWC3).
/// </summary>
public static class CannyDetector
{
    private const int CannyShift = 15;
    // tan(22.5°) in 17.15 fixed point, as OpenCV rounds it
    private static readonly int Tg22 = (int)(0.4142135623730950488016887242097 * (1 << CannyShift) + 0.5);

    /// <summary>A1111's defaults ("Threshold A" 100, "Threshold B" 200).</summary>
    public const double DefaultLow = 100, DefaultHigh = 200;

    /// <summary>The edge map of <paramref name="image"/> (its alpha, if any, is ignored).</summary>
    /// <param name="low">Lower hysteresis threshold on |dx| + |dy| (cv2's threshold1).</param>
    /// <param name="high">Upper threshold (threshold2); swapped with <paramref name="low"/> when smaller, as OpenCV does.</param>
    /// <param name="blurSigma">σ of a Gaussian smoothing before the derivatives (0: none).</param>
    public static RgbImage Detect(RgbImage image, double low = DefaultLow, double high = DefaultHigh, double blurSigma = 0)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!(low >= 0 && high >= 0 && double.IsFinite(low) && double.IsFinite(high)))
            throw new ArgumentOutOfRangeException(nameof(low), (low, high), "canny thresholds must be finite numbers ≥ 0");
        if (!(blurSigma >= 0 && blurSigma <= 100)) throw new ArgumentOutOfRangeException(nameof(blurSigma), blurSigma, "canny blur σ must be in [0, 100]");
        if (low > high) (low, high) = (high, low);
        var rgb = image.ToRgb();
        if (blurSigma > 0) rgb = GaussianBlur.Apply(rgb, blurSigma);
        int w = rgb.Width, h = rgb.Height;
        var (dx, dy, mag) = Gradients(rgb);
        var edges = Suppress(dx, dy, mag, w, h, (int)Math.Floor(low), (int)Math.Floor(high));
        return RgbImage.FromGray(w, h, edges);
    }

    /// <summary>Per pixel: the Sobel dx, dy of the channel with the largest |dx| + |dy|, and that magnitude.</summary>
    private static (int[] Dx, int[] Dy, int[] Mag) Gradients(RgbImage rgb)
    {
        int w = rgb.Width, h = rgb.Height;
        var p = rgb.Pixels;
        var dx = new int[w * h];
        var dy = new int[w * h];
        var mag = new int[w * h];
        for (int y = 0; y < h; y++)
        {
            int ym = Math.Max(y - 1, 0), yp = Math.Min(y + 1, h - 1); // BORDER_REPLICATE
            for (int x = 0; x < w; x++)
            {
                int xm = Math.Max(x - 1, 0), xp = Math.Min(x + 1, w - 1);
                int best = -1;
                for (int c = 0; c < 3; c++)
                {
                    int P(int yy, int xx) => p[(yy * w + xx) * 3 + c];
                    int gx = P(ym, xp) + 2 * P(y, xp) + P(yp, xp) - P(ym, xm) - 2 * P(y, xm) - P(yp, xm);
                    int gy = P(yp, xm) + 2 * P(yp, x) + P(yp, xp) - P(ym, xm) - 2 * P(ym, x) - P(ym, xp);
                    int m = Math.Abs(gx) + Math.Abs(gy);
                    if (m > best)
                    {
                        best = m;
                        dx[y * w + x] = gx;
                        dy[y * w + x] = gy;
                    }
                }
                mag[y * w + x] = best;
            }
        }
        return (dx, dy, mag);
    }

    /// <summary>Non-maximum suppression and hysteresis; 255 marks an edge.</summary>
    private static byte[] Suppress(int[] dx, int[] dy, int[] mag, int w, int h, int low, int high)
    {
        // state: 0 = candidate (weak), 1 = not an edge, 2 = edge; magnitudes outside the image are 0
        var state = new byte[w * h];
        var stack = new Stack<int>();
        int M(int y, int x) => y < 0 || y >= h || x < 0 || x >= w ? 0 : mag[y * w + x];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                int m = mag[i];
                state[i] = 1;
                if (m <= low) continue;
                int xs = dx[i], ys = dy[i];
                long ax = Math.Abs(xs), ay = (long)Math.Abs(ys) << CannyShift;
                long tg22x = ax * Tg22;
                bool maximum;
                if (ay < tg22x) maximum = m > M(y, x - 1) && m >= M(y, x + 1); // the gradient is near horizontal
                else
                {
                    long tg67x = tg22x + (ax << (CannyShift + 1));
                    if (ay > tg67x) maximum = m > M(y - 1, x) && m >= M(y + 1, x); // near vertical
                    else
                    {
                        int s = (xs ^ ys) < 0 ? -1 : 1; // diagonal: up-left/down-right when dx and dy share a sign
                        maximum = m > M(y - 1, x - s) && m > M(y + 1, x + s);
                    }
                }
                if (!maximum) continue;
                if (m > high)
                {
                    state[i] = 2;
                    stack.Push(i);
                }
                else
                {
                    state[i] = 0;
                }
            }
        }
        // hysteresis: grow the edges through 8-connected candidates
        while (stack.Count > 0)
        {
            int i = stack.Pop();
            int y = i / w, x = i % w;
            for (int ny = Math.Max(y - 1, 0); ny <= Math.Min(y + 1, h - 1); ny++)
                for (int nx = Math.Max(x - 1, 0); nx <= Math.Min(x + 1, w - 1); nx++)
                {
                    int n = ny * w + nx;
                    if (state[n] != 0) continue;
                    state[n] = 2;
                    stack.Push(n);
                }
        }
        var edges = new byte[w * h];
        for (int i = 0; i < edges.Length; i++) edges[i] = state[i] == 2 ? (byte)255 : (byte)0;
        return edges;
    }
}

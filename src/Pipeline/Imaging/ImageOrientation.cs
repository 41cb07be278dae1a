using SkiaSharp;

namespace LatentDiffusion.Pipeline.Imaging;

// Applies an EXIF orientation as browsers display it: a phone photo stored sideways with
// orientation 6 ("rotate 90° clockwise") comes out upright. Skia's SKCodec reports the orientation
// but decodes the stored pixels as they are, so the turn is ours to make.
internal static class ImageOrientation
{
    /// <summary>Whether the orientation turns the image by 90° (width and height swap).</summary>
    internal static bool SwapsAxes(SKEncodedOrigin origin) =>
        origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>
    /// Copies RGBA pixels (<paramref name="width"/> × <paramref name="height"/> as stored) into an
    /// upright image of <paramref name="channels"/> channels (3 drops alpha, 4 keeps it).
    /// </summary>
    internal static RgbImage Apply(byte[] rgba, int width, int height, SKEncodedOrigin origin, int channels)
    {
        if (origin == SKEncodedOrigin.TopLeft) return Upright(rgba, width, height, channels);
        bool swap = SwapsAxes(origin);
        int outWidth = swap ? height : width, outHeight = swap ? width : height;
        var pixels = new byte[(long)outWidth * outHeight * channels];
        int o = 0;
        for (int y = 0; y < outHeight; y++)
        {
            for (int x = 0; x < outWidth; x++, o += channels)
            {
                var (sx, sy) = Source(origin, x, y, width, height);
                long s = ((long)sy * width + sx) * 4;
                pixels[o] = rgba[s];
                pixels[o + 1] = rgba[s + 1];
                pixels[o + 2] = rgba[s + 2];
                if (channels == 4) pixels[o + 3] = rgba[s + 3];
            }
        }
        return new RgbImage(outWidth, outHeight, pixels, channels);
    }

    // The common case, without the per-pixel lookup: RGBA is kept as it is, RGB drops every fourth byte.
    private static RgbImage Upright(byte[] rgba, int width, int height, int channels)
    {
        if (channels == 4) return new RgbImage(width, height, rgba, 4);
        var rgb = new byte[(long)width * height * 3];
        for (long s = 0, o = 0; o < rgb.LongLength; s += 4, o += 3)
        {
            rgb[o] = rgba[s];
            rgb[o + 1] = rgba[s + 1];
            rgb[o + 2] = rgba[s + 2];
        }
        return new RgbImage(width, height, rgb, 3);
    }

    // The stored pixel shown at upright position (x, y), for each of the eight EXIF orientations.
    private static (int X, int Y) Source(SKEncodedOrigin origin, int x, int y, int width, int height) => origin switch
    {
        SKEncodedOrigin.TopRight => (width - 1 - x, y),                 // 2: mirrored left-right
        SKEncodedOrigin.BottomRight => (width - 1 - x, height - 1 - y), // 3: turned 180°
        SKEncodedOrigin.BottomLeft => (x, height - 1 - y),              // 4: mirrored top-bottom
        SKEncodedOrigin.LeftTop => (y, x),                              // 5: transposed
        SKEncodedOrigin.RightTop => (y, height - 1 - x),                // 6: shown turned 90° clockwise
        SKEncodedOrigin.RightBottom => (width - 1 - y, height - 1 - x), // 7: transversed
        SKEncodedOrigin.LeftBottom => (width - 1 - y, x),               // 8: shown turned 90° anticlockwise
        _ => (x, y),                                                    // 1: as stored
    };
}

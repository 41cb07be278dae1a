namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Resizing and cropping as the pipelines and datasets need them.</summary>
public static class ImageOps
{
    /// <summary>Resamples to <paramref name="width"/> × <paramref name="height"/> exactly as Pillow's Image.resize does (RGBA premultiplied).</summary>
    public static RgbImage Resize(this RgbImage image, int width, int height, ResizeFilter filter = ResizeFilter.Lanczos)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        // The resampler's passes allocate width × image.Height, then width × height: both must be valid buffers.
        _ = RgbImage.BufferLength(width, image.Height, image.Channels);
        _ = RgbImage.BufferLength(width, height, image.Channels);
        bool premultiply = image.HasAlpha && filter != ResizeFilter.Nearest;
        var source = premultiply ? Resampler.Premultiply(image.Pixels) : image.Pixels;
        var pixels = Resampler.Resize(source, image.Width, image.Height, image.Channels, width, height, filter);
        if (premultiply) Resampler.Unpremultiply(pixels);
        return new RgbImage(width, height, pixels, image.Channels);
    }

    /// <summary>The centred <paramref name="width"/> × <paramref name="height"/> region (torchvision's CenterCrop offsets).</summary>
    public static RgbImage CenterCrop(this RgbImage image, int width, int height)
    {
        if (width > image.Width || height > image.Height)
            throw new ArgumentException($"cannot crop {width}x{height} out of a {image.Width}x{image.Height} image");
        int left = (int)Math.Round((image.Width - width) / 2.0, MidpointRounding.ToEven);
        int top = (int)Math.Round((image.Height - height) / 2.0, MidpointRounding.ToEven);
        return image.Crop(left, top, width, height);
    }

    /// <summary>The largest centred region whose aspect ratio is <paramref name="aspectWidth"/> : <paramref name="aspectHeight"/>.</summary>
    public static RgbImage CropToAspect(this RgbImage image, int aspectWidth, int aspectHeight)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(aspectWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(aspectHeight);
        long width = Math.Min(image.Width, (long)image.Height * aspectWidth / aspectHeight);
        long height = Math.Min(image.Height, (long)image.Width * aspectHeight / aspectWidth);
        return image.CenterCrop((int)Math.Max(1, width), (int)Math.Max(1, height));
    }

    /// <summary>
    /// Scales the image to cover <paramref name="width"/> × <paramref name="height"/> and crops the
    /// overflow evenly (AUTOMATIC1111's "Crop and resize").
    /// </summary>
    public static RgbImage ResizeAndCrop(this RgbImage image, int width, int height, ResizeFilter filter = ResizeFilter.Lanczos)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var length = RgbImage.BufferLength(width, height, image.Channels);
        // Compare width/height with image.Width/image.Height without rounding.
        bool targetWider = (long)width * image.Height > (long)image.Width * height;
        long coverWidth = targetWider ? width : Math.Max(1, (long)image.Width * height / image.Height);
        long coverHeight = targetWider ? Math.Max(1, (long)image.Height * width / image.Width) : height;
        _ = RgbImage.BufferLength(coverWidth, coverHeight, image.Channels); // before the casts: a thin image can scale past int
        int scaledWidth = (int)coverWidth, scaledHeight = (int)coverHeight;
        var scaled = image.Resize(scaledWidth, scaledHeight, filter);
        var result = new RgbImage(width, height, new byte[length], image.Channels);
        result.Paste(scaled, width / 2 - scaledWidth / 2, height / 2 - scaledHeight / 2);
        return result;
    }

    /// <summary>
    /// Scales the image to fit inside <paramref name="width"/> × <paramref name="height"/> keeping its aspect ratio: by
    /// k = min(width / W, height / H), to round(W·k) × round(H·k) (numpy's round, half to even), as the ControlNet
    /// extension's "Resize and Fill" does. Returns the image itself when it already has that size.
    /// </summary>
    public static RgbImage ResizeToFit(this RgbImage image, int width, int height, ResizeFilter filter = ResizeFilter.Lanczos)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var k = Math.Min((double)height / image.Height, (double)width / image.Width);
        int fitWidth = (int)Math.Clamp(Math.Round(image.Width * k, MidpointRounding.ToEven), 1, width);
        int fitHeight = (int)Math.Clamp(Math.Round(image.Height * k, MidpointRounding.ToEven), 1, height);
        return fitWidth == image.Width && fitHeight == image.Height ? image : image.Resize(fitWidth, fitHeight, filter);
    }

    /// <summary>
    /// Centres the image on a <paramref name="width"/> × <paramref name="height"/> canvas filled with the median colour of its
    /// border (its first and last rows and columns, per channel; numpy's median of the bytes, truncated to a byte), the
    /// ControlNet extension's "Resize and Fill" background. The image must not be larger than the canvas.
    /// </summary>
    public static RgbImage FillTo(this RgbImage image, int width, int height)
    {
        if (image.Width > width || image.Height > height)
            throw new ArgumentException($"a {image.Width}x{image.Height} image does not fit on a {width}x{height} canvas");
        var median = BorderMedian(image);
        var result = new RgbImage(width, height, new byte[RgbImage.BufferLength(width, height, image.Channels)], image.Channels);
        for (int i = 0; i < result.Pixels.Length; i += image.Channels)
            for (int c = 0; c < image.Channels; c++) result.Pixels[i + c] = median[c];
        // the extension's pad = max(0, (h − new_h) // 2)
        result.Paste(image, (width - image.Width) / 2, (height - image.Height) / 2);
        return result;
    }

    /// <summary>
    /// Per channel, the median of the first row, the last row, the first column and the last column (corners counted twice,
    /// as numpy.concatenate of the four gives them): 2·(W + H) values, an even count, so the mean of the two middle ones,
    /// truncated as numpy's astype(uint8) does.
    /// </summary>
    private static byte[] BorderMedian(RgbImage image)
    {
        int channels = image.Channels, w = image.Width, h = image.Height;
        var histograms = new int[channels, 256];
        void Count(int x, int y)
        {
            var at = (y * w + x) * channels;
            for (int c = 0; c < channels; c++) histograms[c, image.Pixels[at + c]]++;
        }
        for (int x = 0; x < w; x++) { Count(x, 0); Count(x, h - 1); }
        for (int y = 0; y < h; y++) { Count(0, y); Count(w - 1, y); }
        var n = 2 * (w + h);
        var median = new byte[channels];
        for (int c = 0; c < channels; c++)
        {
            int lower = -1, upper = -1, seen = 0;
            for (int v = 0; v < 256 && upper < 0; v++)
            {
                seen += histograms[c, v];
                if (lower < 0 && seen >= n / 2) lower = v;       // the value at sorted index n/2 − 1
                if (seen >= n / 2 + 1) upper = v;                 // the value at sorted index n/2
            }
            median[c] = (byte)((lower + upper) / 2);
        }
        return median;
    }

    /// <summary>
    /// Resizes so both sides are the largest multiples of <paramref name="multiple"/> not above the
    /// current ones (diffusers' VaeImageProcessor: the VAE needs sides divisible by 8). Returns the
    /// image itself when it already fits.
    /// </summary>
    public static RgbImage ResizeToMultipleOf(this RgbImage image, int multiple = 8, ResizeFilter filter = ResizeFilter.Lanczos)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(multiple);
        int width = image.Width - image.Width % multiple, height = image.Height - image.Height % multiple;
        if (width == 0 || height == 0)
            throw new ArgumentException($"a {image.Width}x{image.Height} image is smaller than {multiple} pixels on a side");
        return width == image.Width && height == image.Height ? image : image.Resize(width, height, filter);
    }
}

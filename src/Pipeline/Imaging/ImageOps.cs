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

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Lays equally sized images out in rows and columns (diffusers' make_image_grid, row by row).</summary>
public static class ImageGrid
{
    /// <param name="columns">images per row; by default ⌈√n⌉</param>
    /// <param name="spacing">pixels between cells and around the grid, filled with <paramref name="background"/></param>
    public static RgbImage Compose(IReadOnlyList<RgbImage> images, int? columns = null, int spacing = 0, Rgb? background = null)
    {
        if (images.Count == 0) throw new ArgumentException("a grid needs at least one image", nameof(images));
        ArgumentOutOfRangeException.ThrowIfNegative(spacing);
        int cols = columns ?? (int)Math.Ceiling(Math.Sqrt(images.Count));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        cols = Math.Min(cols, images.Count);
        int rows = (images.Count + cols - 1) / cols;
        var (cellWidth, cellHeight) = (images[0].Width, images[0].Height);
        foreach (var image in images)
        {
            if (image.Width != cellWidth || image.Height != cellHeight)
                throw new ArgumentException($"grid images must all be {cellWidth}x{cellHeight}; one is {image.Width}x{image.Height}", nameof(images));
        }
        int channels = images.Any(i => i.HasAlpha) ? 4 : 3;
        var grid = RgbImage.Filled(cols * cellWidth + (cols + 1) * spacing, rows * cellHeight + (rows + 1) * spacing, background ?? Rgb.Black, channels);
        for (int i = 0; i < images.Count; i++)
            grid.Paste(images[i], spacing + i % cols * (cellWidth + spacing), spacing + i / cols * (cellHeight + spacing));
        return grid;
    }
}

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>A grid with a label left of each row and above each column (an XY plot, as AUTOMATIC1111 draws one).</summary>
public static class LabelledGrid
{
    /// <summary>
    /// <paramref name="cells"/>[row][column], all the same size, with <paramref name="rowLabels"/> and
    /// <paramref name="columnLabels"/> in a small pixel font (letters, digits, + - _ . ( )), white on black.
    /// </summary>
    public static RgbImage Compose(IReadOnlyList<IReadOnlyList<RgbImage>> cells, IReadOnlyList<string> rowLabels, IReadOnlyList<string> columnLabels, int spacing = 2)
    {
        ArgumentNullException.ThrowIfNull(cells);
        if (cells.Count == 0 || cells[0].Count == 0) throw new ArgumentException("a grid needs at least one image", nameof(cells));
        if (rowLabels.Count != cells.Count) throw new ArgumentException($"{rowLabels.Count} row labels for {cells.Count} rows", nameof(rowLabels));
        int columns = cells[0].Count;
        if (cells.Any(r => r.Count != columns)) throw new ArgumentException("every row needs the same number of images", nameof(cells));
        if (columnLabels.Count != columns) throw new ArgumentException($"{columnLabels.Count} column labels for {columns} columns", nameof(columnLabels));

        var body = ImageGrid.Compose(cells.SelectMany(r => r).ToList(), columns, spacing);
        var (cellWidth, cellHeight) = (cells[0][0].Width, cells[0][0].Height);
        int scale = Math.Max(1, cellHeight / 32);                     // 5-pixel letters on 32-pixel images, larger on larger ones
        int left = rowLabels.Max(l => TinyFont.Width(l, scale)) + 2 * spacing + 2 * scale;
        int top = TinyFont.Height * scale + 2 * spacing + 2 * scale;
        var grid = RgbImage.Filled(left + body.Width, top + body.Height, Rgb.Black, body.Channels);
        grid.Paste(body, left, top);
        for (int c = 0; c < columns; c++)
        {
            int x = left + spacing + c * (cellWidth + spacing) + (cellWidth - TinyFont.Width(columnLabels[c], scale)) / 2;
            TinyFont.Draw(grid, columnLabels[c], Math.Max(0, x), spacing + scale, scale, Rgb.White);
        }
        for (int r = 0; r < cells.Count; r++)
        {
            int y = top + spacing + r * (cellHeight + spacing) + (cellHeight - TinyFont.Height * scale) / 2;
            TinyFont.Draw(grid, rowLabels[r], spacing + scale, y, scale, Rgb.White);
        }
        return grid;
    }
}

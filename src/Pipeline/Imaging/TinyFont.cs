namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// A 3 × 5 pixel font for plot ticks and grid labels: digits, letters (lower case drawn as upper case) and a few
/// signs. Small enough to stamp without a font engine (SkiaSharp's text needs system fonts a server may lack).
/// </summary>
internal static class TinyFont
{
    public const int GlyphWidth = 3;
    public const int Height = 5;

    private static readonly byte[][] Digits =
    [
        [7, 5, 5, 5, 7], [2, 6, 2, 2, 7], [7, 1, 7, 4, 7], [7, 1, 7, 1, 7], [5, 5, 7, 1, 1],
        [7, 4, 7, 1, 7], [7, 4, 7, 5, 7], [7, 1, 1, 1, 1], [7, 5, 7, 5, 7], [7, 5, 7, 1, 7],
    ];

    // Rows top to bottom, bit 4 = left column.
    private static readonly byte[][] Letters =
    [
        [2, 5, 7, 5, 5], [6, 5, 6, 5, 6], [3, 4, 4, 4, 3], [6, 5, 5, 5, 6], [7, 4, 6, 4, 7], [7, 4, 6, 4, 4], // A–F
        [3, 4, 5, 5, 3], [5, 5, 7, 5, 5], [7, 2, 2, 2, 7], [1, 1, 1, 5, 2], [5, 5, 6, 5, 5], [4, 4, 4, 4, 7], // G–L
        [5, 7, 7, 5, 5], [6, 5, 5, 5, 5], [2, 5, 5, 5, 2], [6, 5, 6, 4, 4], [2, 5, 5, 6, 3], [6, 5, 6, 5, 5], // M–R
        [3, 4, 2, 1, 6], [7, 2, 2, 2, 2], [5, 5, 5, 5, 7], [5, 5, 5, 5, 2], [5, 5, 7, 7, 5], [5, 5, 2, 5, 5], // S–X
        [5, 5, 2, 2, 2], [7, 1, 2, 4, 7],                                                                   // Y–Z
    ];

    private static readonly byte[] Minus = [0, 0, 7, 0, 0];
    private static readonly byte[] Point = [0, 0, 0, 0, 2];
    private static readonly byte[] Plus = [0, 2, 7, 2, 0];
    private static readonly byte[] Underscore = [0, 0, 0, 0, 7];
    private static readonly byte[] Open = [1, 2, 2, 2, 1];
    private static readonly byte[] Close = [4, 2, 2, 2, 4];
    private static readonly byte[] Blank = [0, 0, 0, 0, 0];

    public static byte[] Glyph(char c) => c switch
    {
        >= '0' and <= '9' => Digits[c - '0'],
        >= 'A' and <= 'Z' => Letters[c - 'A'],
        >= 'a' and <= 'z' => Letters[c - 'a'],
        '-' => Minus,
        '.' => Point,
        '+' => Plus,
        '_' => Underscore,
        '(' => Open,
        ')' => Close,
        _ => Blank,
    };

    public static int Width(string text, int scale) => text.Length == 0 ? 0 : (text.Length * (GlyphWidth + 1) - 1) * scale;

    /// <summary>Stamps <paramref name="text"/> with its top-left corner at (x, y), each font pixel a scale × scale square; clipped to the image.</summary>
    public static void Draw(RgbImage image, string text, int x, int y, int scale, Rgb color)
    {
        foreach (var c in text)
        {
            var rows = Glyph(c);
            for (int row = 0; row < Height; row++)
                for (int col = 0; col < GlyphWidth; col++)
                    if ((rows[row] >> (GlyphWidth - 1 - col) & 1) != 0)
                        for (int dy = 0; dy < scale; dy++)
                            for (int dx = 0; dx < scale; dx++)
                            {
                                int px = x + col * scale + dx, py = y + row * scale + dy;
                                if ((uint)px < (uint)image.Width && (uint)py < (uint)image.Height) image.SetPixel(px, py, color);
                            }
            x += (GlyphWidth + 1) * scale;
        }
    }
}

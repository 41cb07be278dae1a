namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>
/// How scanlines are filtered before compression. <see cref="Adaptive"/> tries all five filters
/// on each row and keeps the one with the smallest sum of absolute byte values (libpng's heuristic).
/// </summary>
public enum PngFilter { None = 0, Sub = 1, Up = 2, Average = 3, Paeth = 4, Adaptive = 5 }

internal static class PngFilters
{
    /// <summary>Writes the filter-type byte and the filtered <paramref name="row"/> into <paramref name="output"/> (row length + 1).</summary>
    /// <param name="prior">the previous unfiltered row, all zeros for the first row</param>
    /// <param name="scratch">a buffer of row length + 1 bytes used by the adaptive search</param>
    public static void FilterRow(PngFilter filter, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prior, int bytesPerPixel, Span<byte> output, Span<byte> scratch)
    {
        if (filter != PngFilter.Adaptive)
        {
            Apply(filter, row, prior, bytesPerPixel, output);
            return;
        }
        long best = long.MaxValue;
        for (var candidate = PngFilter.None; candidate <= PngFilter.Paeth; candidate++)
        {
            Apply(candidate, row, prior, bytesPerPixel, scratch);
            long cost = Cost(scratch[1..]);
            if (cost < best)
            {
                best = cost;
                scratch.CopyTo(output);
            }
        }
    }

    // Filtered bytes read as signed values: small magnitudes compress well.
    private static long Cost(ReadOnlySpan<byte> filtered)
    {
        long sum = 0;
        foreach (var b in filtered) sum += b < 128 ? b : 256 - b;
        return sum;
    }

    private static void Apply(PngFilter filter, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prior, int bpp, Span<byte> output)
    {
        output[0] = (byte)filter;
        var o = output[1..];
        switch (filter)
        {
            case PngFilter.None:
                row.CopyTo(o);
                break;
            case PngFilter.Sub:
                for (int i = 0; i < row.Length; i++) o[i] = (byte)(row[i] - (i >= bpp ? row[i - bpp] : 0));
                break;
            case PngFilter.Up:
                for (int i = 0; i < row.Length; i++) o[i] = (byte)(row[i] - prior[i]);
                break;
            case PngFilter.Average:
                for (int i = 0; i < row.Length; i++) o[i] = (byte)(row[i] - (((i >= bpp ? row[i - bpp] : 0) + prior[i]) >> 1));
                break;
            case PngFilter.Paeth:
                for (int i = 0; i < row.Length; i++)
                    o[i] = (byte)(row[i] - Paeth(i >= bpp ? row[i - bpp] : 0, prior[i], i >= bpp ? prior[i - bpp] : 0));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(filter), filter, "not a PNG filter type");
        }
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        if (pa <= pb && pa <= pc) return a;
        return pb <= pc ? b : c;
    }
}

using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Memory;

/// <summary>
/// How a request for many images runs: in chunks of <see cref="ChunkSize"/> images one after another
/// (AUTOMATIC1111's batch size × batch count), with the memory estimate that chose it.
/// </summary>
/// <param name="ChunkSize">Images per chunk, 1 to the number of images.</param>
/// <param name="NeededBytes">The estimate at this chunk size: one chunk's peak plus every finished image's results.</param>
/// <param name="AvailableBytes">What the device had available when the plan was made.</param>
public sealed record BatchPlan(int ChunkSize, double NeededBytes, double AvailableBytes)
{
    /// <summary>
    /// Chunks of at most this many images when the caller leaves the size to the plan: a bigger batch is hardly faster
    /// per image on a CPU, and its first step keeps the user waiting (1000 images at 64×64 took 33 s per step in one batch).
    /// </summary>
    public static int DefaultMaxChunk(Device device) => device.Type == DeviceType.Cuda ? 16 : 8;

    /// <summary>
    /// Picks the chunk size for <paramref name="images"/> images, or refuses the request before anything is allocated.
    /// With <paramref name="requested"/>, that size (at most the image count) must fit in the available memory.
    /// Without it, the largest size up to <paramref name="maxChunk"/> whose estimate fits in half the available
    /// memory (the rest is headroom for the estimate's error and for other processes), else 1 if that fits at all.
    /// </summary>
    /// <param name="chunkBytes">Peak bytes of one chunk of the given size.</param>
    /// <param name="resultBytes">Bytes every finished image keeps until the request returns.</param>
    /// <param name="size">The request's size for the message, e.g. "512×512".</param>
    /// <param name="advice">What to change, for the message, e.g. "use --vae-tiling, or a smaller size"; "--batch-size 1" is added when it would help.</param>
    public static BatchPlan Choose(int images, int? requested, int maxChunk, Func<long, double> chunkBytes, double resultBytes,
        double availableBytes, string size, IReadOnlyList<string> advice)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(images);
        double Need(long chunk) => chunkBytes(chunk) + images * resultBytes;
        if (requested is int r)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(r, nameof(requested));
            var chunk = Math.Min(r, images);
            var need = Need(chunk);
            if (!(need <= availableBytes)) throw Refuse(images, chunk, need, availableBytes, size, advice);
            return new BatchPlan(chunk, need, availableBytes);
        }
        // The estimate grows with the chunk size: binary search for the largest that fits in half.
        int low = 1, high = Math.Max(1, Math.Min(maxChunk, images));
        if (!(Need(1) <= availableBytes / 2))
        {
            var one = Need(1);
            if (!(one <= availableBytes)) throw Refuse(images, 1, one, availableBytes, size, advice);
            return new BatchPlan(1, one, availableBytes);
        }
        while (low < high)
        {
            var mid = low + (high - low + 1) / 2;
            if (Need(mid) <= availableBytes / 2) low = mid; else high = mid - 1;
        }
        return new BatchPlan(low, Need(low), availableBytes);
    }

    private static MemoryLimitException Refuse(int images, int chunk, double need, double available, string size, IReadOnlyList<string> advice)
    {
        var count = images == 1 ? "1 image" : chunk == images ? $"{images} images" : $"{images} images in batches of {chunk}";
        var hints = (chunk > 1 ? ["--batch-size 1", .. advice] : advice).ToList();
        var hint = hints.Count switch
        {
            0 => "",
            1 => $" (use {hints[0]})",
            _ => $" (use {string.Join(", ", hints.Take(hints.Count - 1))}, or {hints[^1]})",
        };
        return new MemoryLimitException(
            $"{size}, {count}: needs about {MemoryLimitException.Format(need)}, {MemoryLimitException.Format(available)} available{hint}", need, available);
    }

    /// <summary>The chunks' (offset, count) pairs in order.</summary>
    public IEnumerable<(int Offset, int Count)> Chunks(int images)
    {
        for (int offset = 0; offset < images; offset += ChunkSize) yield return (offset, Math.Min(ChunkSize, images - offset));
    }
}

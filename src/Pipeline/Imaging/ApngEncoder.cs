using System.Buffers.Binary;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>One frame of an animation and how long it stays on screen.</summary>
public sealed record ApngFrame(RgbImage Image, TimeSpan Delay);

/// <summary>
/// Writes animated PNG: every frame is a full image of the same size that replaces the previous
/// one. The first frame is also the default image, so viewers without APNG support show it.
/// </summary>
public static class ApngEncoder
{
    /// <summary>Writes the frames, each shown for <paramref name="delay"/>, atomically.</summary>
    /// <param name="loopCount">how many times to play; 0 repeats forever</param>
    public static void Save(string path, IReadOnlyList<RgbImage> frames, TimeSpan delay, int loopCount = 0,
        IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null) =>
        Save(path, frames.Select(f => new ApngFrame(f, delay)).ToList(), loopCount, texts, options);

    public static void Save(string path, IReadOnlyList<ApngFrame> frames, int loopCount = 0,
        IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null)
    {
        var list = texts?.ToList();
        AtomicFile.Write(path, stream => Encode(stream, frames, loopCount, list, options));
    }

    public static void Encode(Stream output, IReadOnlyList<ApngFrame> frames, int loopCount = 0,
        IEnumerable<PngText>? texts = null, PngEncoderOptions? options = null)
    {
        if (frames.Count == 0) throw new ArgumentException("an animation needs at least one frame", nameof(frames));
        ArgumentOutOfRangeException.ThrowIfNegative(loopCount);
        var first = frames[0].Image;
        bool alpha = frames.Any(f => f.Image.HasAlpha);
        foreach (var frame in frames)
        {
            if (frame.Image.Width != first.Width || frame.Image.Height != first.Height)
                throw new ArgumentException($"all frames must be {first.Width}x{first.Height}; one is {frame.Image.Width}x{frame.Image.Height}", nameof(frames));
        }
        options ??= PngEncoderOptions.Default;

        var writer = new PngChunkWriter(output);
        writer.WriteSignature();
        writer.WriteHeader(first.Width, first.Height, alpha ? PngColorType.Rgba : PngColorType.Rgb);
        Span<byte> actl = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(actl, frames.Count);
        BinaryPrimitives.WriteInt32BigEndian(actl[4..], loopCount);
        writer.Write("acTL", actl);
        writer.WriteTexts(texts);

        // fcTL and fdAT chunks share one sequence counter starting at 0; IDAT has none.
        int sequence = 0;
        for (int i = 0; i < frames.Count; i++)
        {
            var image = alpha ? frames[i].Image.ToRgba() : frames[i].Image;
            writer.Write("fcTL", FrameControl(sequence++, image.Width, image.Height, frames[i].Delay));
            if (i == 0)
            {
                PngChunkWriter.CompressImage(image.Width, image.Height, image.Channels, image.Pixels, options, data => writer.Write("IDAT", data));
                continue;
            }
            PngChunkWriter.CompressImage(image.Width, image.Height, image.Channels, image.Pixels, options, data =>
            {
                var fdat = new byte[data.Length + 4];
                BinaryPrimitives.WriteInt32BigEndian(fdat, sequence++);
                data.CopyTo(fdat.AsSpan(4));
                writer.Write("fdAT", fdat);
            });
        }
        writer.WriteEnd();
    }

    private static byte[] FrameControl(int sequence, int width, int height, TimeSpan delay)
    {
        var (numerator, denominator) = DelayFraction(delay);
        var fctl = new byte[26];
        BinaryPrimitives.WriteInt32BigEndian(fctl, sequence);
        BinaryPrimitives.WriteInt32BigEndian(fctl.AsSpan(4), width);
        BinaryPrimitives.WriteInt32BigEndian(fctl.AsSpan(8), height);
        // x and y offsets (8 bytes) stay 0: every frame covers the canvas.
        BinaryPrimitives.WriteUInt16BigEndian(fctl.AsSpan(20), numerator);
        BinaryPrimitives.WriteUInt16BigEndian(fctl.AsSpan(22), denominator);
        fctl[24] = 0; // dispose_op NONE
        fctl[25] = 0; // blend_op SOURCE: the frame replaces what was there
        return fctl;
    }

    /// <summary>The delay as a 16-bit fraction of a second: milliseconds, else centiseconds, else seconds.</summary>
    public static (ushort Numerator, ushort Denominator) DelayFraction(TimeSpan delay)
    {
        if (delay < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(delay), delay, "a frame delay cannot be negative");
        foreach (var denominator in new ushort[] { 1000, 100, 1 })
        {
            double units = Math.Round(delay.TotalSeconds * denominator);
            if (units <= ushort.MaxValue) return ((ushort)units, denominator);
        }
        throw new ArgumentOutOfRangeException(nameof(delay), delay, "a frame delay must be at most 65535 seconds");
    }
}

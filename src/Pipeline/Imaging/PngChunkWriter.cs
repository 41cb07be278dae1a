using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace LatentDiffusion.Pipeline.Imaging;

/// <summary>Writes the PNG signature and chunks (length, type, data, CRC of type and data) to a stream.</summary>
internal sealed class PngChunkWriter(Stream output)
{
    public static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    // Compressed image data is cut into chunks of this size, as libpng and PIL do (they use 8 and 64 KiB).
    private const int ImageDataChunkSize = 1 << 18;

    public void WriteSignature() => output.Write(Signature);

    public void Write(string type, ReadOnlySpan<byte> data)
    {
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header, data.Length);
        Encoding.ASCII.GetBytes(type, header[4..]);
        uint crc = Crc32.Update(Crc32.Start, header[4..]);
        crc = Crc32.Finish(Crc32.Update(crc, data));
        Span<byte> trailer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(trailer, crc);
        output.Write(header);
        output.Write(data);
        output.Write(trailer);
    }

    public void WriteHeader(int width, int height, PngColorType colorType)
    {
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = (byte)colorType;
        ihdr[10] = 0; // deflate
        ihdr[11] = 0; // adaptive filtering
        ihdr[12] = 0; // no interlace
        Write("IHDR", ihdr);
    }

    public void WriteTexts(IEnumerable<PngText>? texts)
    {
        if (texts is null) return;
        foreach (var text in texts) Write(text.ChunkType, text.ToChunkData());
    }

    public void WriteEnd() => Write("IEND", default);

    /// <summary>
    /// Filters and deflates the scanlines and hands the zlib stream to <paramref name="emit"/> in
    /// pieces, one per chunk (IDAT, or fdAT with its sequence number).
    /// </summary>
    public static void CompressImage(int width, int height, int channels, ReadOnlySpan<byte> pixels, PngEncoderOptions options,
        Action<ReadOnlySpan<byte>> emit)
    {
        int rowBytes = width * channels;
        if (pixels.Length != (long)rowBytes * height)
            throw new ArgumentException($"a {width}x{height} image with {channels} channels needs {(long)rowBytes * height} bytes but {pixels.Length} were given");
        using var chunks = new ChunkingStream(ImageDataChunkSize, emit);
        using (var zlib = new ZLibStream(chunks, options.Compression, leaveOpen: true))
        {
            var previous = new byte[rowBytes];
            var filtered = new byte[rowBytes + 1];
            var scratch = new byte[rowBytes + 1];
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * rowBytes, rowBytes);
                PngFilters.FilterRow(options.Filter, row, previous, channels, filtered, scratch);
                zlib.Write(filtered);
                row.CopyTo(previous);
            }
        }
    }

    /// <summary>Collects written bytes and passes them on in blocks of a fixed size (the last may be shorter).</summary>
    private sealed class ChunkingStream(int size, Action<ReadOnlySpan<byte>> emit) : Stream
    {
        private readonly byte[] buffer = new byte[size];
        private int count;

        public override void Write(ReadOnlySpan<byte> data)
        {
            while (!data.IsEmpty)
            {
                int n = Math.Min(data.Length, buffer.Length - count);
                data[..n].CopyTo(buffer.AsSpan(count));
                count += n;
                data = data[n..];
                if (count == buffer.Length) Emit();
            }
        }

        public override void Write(byte[] data, int offset, int length) => Write(data.AsSpan(offset, length));

        private void Emit()
        {
            emit(buffer.AsSpan(0, count));
            count = 0;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && count > 0) Emit();
            base.Dispose(disposing);
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

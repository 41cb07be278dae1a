using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Autoencoder.Tests;

/// <summary>
/// Test-only readers for the shared data: NumPy .npy ('&lt;f4', C order) and 8-bit RGB/RGBA PNG
/// (non-interlaced). The project's image I/O belongs to Pipeline; these exist so that the autoencoder
/// tests need nothing above Torch.
/// </summary>
internal static partial class TestImages
{
    /// <summary>A float32 C-order .npy array (format 1.0/2.0, descr '&lt;f4').</summary>
    public static Tensor ReadNpy(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{path}: not a .npy file");
        int major = bytes[6];
        int headerLength, start;
        if (major == 1) { headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)); start = 10; }
        else { headerLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)); start = 12; }
        var header = Encoding.ASCII.GetString(bytes, start, headerLength);
        if (!header.Contains("'descr': '<f4'")) throw new InvalidDataException($"{path}: only '<f4' arrays are supported ({header.Trim()})");
        if (!header.Contains("'fortran_order': False")) throw new InvalidDataException($"{path}: Fortran-order arrays are not supported");
        var shapeText = ShapePattern().Match(header).Groups[1].Value;
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
        var data = bytes.AsSpan(start + headerLength);
        return Tensor.FromBytes(data, DType.Float32, shape);
    }

    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    /// <summary>An 8-bit RGB or RGBA PNG as a float tensor [1, 3, H, W] in [0, 1] (alpha dropped).</summary>
    public static Tensor ReadPng(string path)
    {
        var bytes = File.ReadAllBytes(path);
        ReadOnlySpan<byte> signature = [137, 80, 78, 71, 13, 10, 26, 10];
        if (!bytes.AsSpan(0, 8).SequenceEqual(signature)) throw new InvalidDataException($"{path}: not a PNG");
        int width = 0, height = 0, channels = 0;
        using var compressed = new MemoryStream();
        for (int offset = 8; offset + 8 <= bytes.Length;)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(offset));
            var type = Encoding.ASCII.GetString(bytes, offset + 4, 4);
            var body = bytes.AsSpan(offset + 8, length);
            if (type == "IHDR")
            {
                width = (int)BinaryPrimitives.ReadUInt32BigEndian(body);
                height = (int)BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                if (body[8] != 8 || body[12] != 0 || body[9] is not (2 or 6))
                    throw new InvalidDataException($"{path}: only 8-bit non-interlaced RGB/RGBA PNGs are supported");
                channels = body[9] == 2 ? 3 : 4;
            }
            else if (type == "IDAT") compressed.Write(body);
            else if (type == "IEND") break;
            offset += 12 + length;
        }
        compressed.Position = 0;
        using var inflater = new ZLibStream(compressed, CompressionMode.Decompress);
        using var raw = new MemoryStream();
        inflater.CopyTo(raw);
        var pixels = Unfilter(raw.ToArray(), width, height, channels);

        var planar = new float[3 * height * width];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                    planar[(c * height + y) * width + x] = pixels[(y * width + x) * channels + c] / 255f;
        return Tensor.From(planar, 1, 3, height, width);
    }

    // PNG filter types 0–4 (None, Sub, Up, Average, Paeth), one per row.
    private static byte[] Unfilter(byte[] data, int width, int height, int bpp)
    {
        var stride = width * bpp;
        var output = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            var filter = data[y * (stride + 1)];
            var source = data.AsSpan(y * (stride + 1) + 1, stride);
            var row = output.AsSpan(y * stride, stride);
            var above = y > 0 ? output.AsSpan((y - 1) * stride, stride) : new byte[stride];
            for (int i = 0; i < stride; i++)
            {
                int left = i >= bpp ? row[i - bpp] : 0, up = above[i], upLeft = i >= bpp ? above[i - bpp] : 0;
                int predictor = filter switch
                {
                    0 => 0,
                    1 => left,
                    2 => up,
                    3 => (left + up) / 2,
                    4 => Paeth(left, up, upLeft),
                    _ => throw new InvalidDataException($"unknown PNG filter {filter}"),
                };
                row[i] = (byte)(source[i] + predictor);
            }
        }
        return output;
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>PSNR in dB of images in [0, 1]: 10 log₁₀(1 / MSE).</summary>
    public static double Psnr(Tensor reference, Tensor image)
    {
        using var mse = Functional.MseLoss(image, reference);
        return 10 * Math.Log10(1 / mse.Item());
    }
}

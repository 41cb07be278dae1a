namespace LatentDiffusion.Pipeline.Imaging;

public sealed partial class RgbImage
{
    /// <summary>One byte per pixel, PIL's convert("L") of the RGB channels (alpha dropped): L = R·299/1000 + G·587/1000 + B·114/1000, rounded.</summary>
    public byte[] ToLuma()
    {
        var result = new byte[PixelCount];
        for (long i = 0; i < result.LongLength; i++)
        {
            var p = Pixels.AsSpan((int)(Channels * i), 3);
            result[i] = (byte)((p[0] * 299 + p[1] * 587 + p[2] * 114 + 500) / 1000);
        }
        return result;
    }
}

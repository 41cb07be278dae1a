using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Imaging;

// Conversions between images and [N, C, H, W] float tensors, with diffusers' arithmetic so that
// the same image gives the same bytes and the same tensor as the reference pipelines.
public sealed partial class RgbImage
{
    /// <summary>
    /// A float32 CPU tensor [1, 3, H, W] in [-1, 1], the VAE's input convention
    /// (diffusers: x / 255 then 2x − 1, in float32). Alpha is dropped.
    /// </summary>
    public Tensor ToTensor() => ToTensorCore(signed: true);

    /// <summary>A float32 CPU tensor [1, 3, H, W] in [0, 1] (x / 255).</summary>
    public Tensor ToUnitTensor() => ToTensorCore(signed: false);

    private Tensor ToTensorCore(bool signed)
    {
        int plane = Width * Height;
        var data = new float[3 * plane];
        for (int p = 0, o = 0; p < plane; p++, o += Channels)
        {
            for (int c = 0; c < 3; c++)
            {
                float v = Pixels[o + c] / 255f;
                data[c * plane + p] = signed ? 2f * v - 1f : v;
            }
        }
        return Tensor.From<float>(data, 1, 3, Height, Width);
    }

    /// <summary>
    /// Images from a [N, C, H, W] (or [C, H, W]) tensor in [-1, 1], as diffusers' postprocess does:
    /// clamp(x / 2 + 0.5, 0, 1) in the tensor's dtype, then round(x · 255) in float32 (half to even).
    /// C is 3 (RGB), 1 (gray, written as RGB) or 4 (RGBA). Any device and floating dtype.
    /// </summary>
    public static RgbImage[] FromTensor(Tensor images) => FromTensorCore(images, signed: true);

    /// <summary>Like <see cref="FromTensor"/> for a tensor in [0, 1]: clamp(x, 0, 1), round(x · 255).</summary>
    public static RgbImage[] FromUnitTensor(Tensor images) => FromTensorCore(images, signed: false);

    private static RgbImage[] FromTensorCore(Tensor images, bool signed)
    {
        var shape = images.Shape;
        if (shape.Length == 3) shape = [1, .. shape];
        if (shape.Length != 4 || shape[1] is not (1 or 3 or 4))
            throw new ArgumentException($"expected images as [N, C, H, W] with C = 1, 3 or 4, got [{string.Join(", ", images.Shape)}]", nameof(images));
        if (!images.DType.IsFloatingPoint())
            throw new ArgumentException($"expected a floating-point image tensor, got {images.DType}", nameof(images));
        int n = checked((int)shape[0]), c = (int)shape[1], h = checked((int)shape[2]), w = checked((int)shape[3]);

        float[] values;
        using (DisposeScope.Enter())
        {
            values = Normalize(images, signed).To(Device.CPU, DType.Float32).Contiguous().ToArray<float>();
        }

        int channels = c == 4 ? 4 : 3, plane = BufferLength(w, h, channels) / channels;
        var result = new RgbImage[n];
        for (int i = 0; i < n; i++)
        {
            var pixels = new byte[plane * channels];
            int start = i * c * plane;
            for (int p = 0; p < plane; p++)
            {
                for (int k = 0; k < channels; k++)
                {
                    int source = c == 1 ? 0 : k;
                    pixels[p * channels + k] = ToByte(values[start + source * plane + p]);
                }
            }
            result[i] = new RgbImage(w, h, pixels, channels);
        }
        return result;
    }

    // diffusers computes x / 2 + 0.5 and the clamp in the tensor's own dtype. libtorch 1.13 has no
    // CPU clamp for half types, so those are computed in float32 and rounded back to the dtype
    // after each rounding step, which gives the same values (half ops round a float32 result).
    private static Tensor Normalize(Tensor images, bool signed)
    {
        var dtype = images.DType;
        if (dtype is DType.Float32 or DType.Float64)
            return (signed ? images / 2 + 0.5 : images).Clamp(0, 1);
        var x = images.To(DType.Float32);
        if (signed) x = (x / 2 + 0.5).To(dtype).To(DType.Float32);
        return x.Clamp(0, 1);
    }

    // numpy: (images * 255).round().astype("uint8") — float32 product, round half to even.
    private static byte ToByte(float unit) => (byte)MathF.Round(unit * 255f, MidpointRounding.ToEven);
}

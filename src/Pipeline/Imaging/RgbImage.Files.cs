namespace LatentDiffusion.Pipeline.Imaging;

// Shortcuts to the decoder and the PNG encoder.
public sealed partial class RgbImage
{
    /// <inheritdoc cref="ImageDecoder.Load"/>
    public static RgbImage Load(string path, bool keepAlpha = false, long maxPixels = ImageDecoder.DefaultMaxPixels) =>
        ImageDecoder.Load(path, keepAlpha, maxPixels);

    /// <summary>Writes this image as PNG, atomically, with the generation parameters when given.</summary>
    public void SavePng(string path, GenerationParameters? parameters = null) =>
        PngEncoder.Save(path, this, parameters is null ? null : [parameters.ToPngText()]);

    public byte[] EncodePng(IEnumerable<PngText>? texts = null) => PngEncoder.Encode(this, texts);
}

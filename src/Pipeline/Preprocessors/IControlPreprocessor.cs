using System.Globalization;
using LatentDiffusion.Pipeline.Imaging;

namespace LatentDiffusion.Pipeline.Preprocessors;

/// <summary>
/// Makes a ControlNet's control image from a photo (AUTOMATIC1111's ControlNet "Preprocessor" / module). Only Canny ships:
/// depth, pose, segmentation and the like need models of their own; their maps are given ready-made.
/// </summary>
public interface IControlPreprocessor
{
    /// <summary>The module's name as A1111 records it ("canny").</summary>
    string Module { get; }

    /// <summary>Its settings as A1111 records them ("Threshold A", "Threshold B").</summary>
    IReadOnlyList<KeyValuePair<string, string>> Settings { get; }

    /// <summary>The control image of <paramref name="photo"/>, of the same size.</summary>
    RgbImage Apply(RgbImage photo);
}

/// <summary>A1111's "canny" module: <see cref="CannyDetector"/> with low and high thresholds (its Threshold A and B).</summary>
public sealed record CannyPreprocessor(double Low = CannyDetector.DefaultLow, double High = CannyDetector.DefaultHigh, double BlurSigma = 0)
    : IControlPreprocessor
{
    public string Module => "canny";

    public IReadOnlyList<KeyValuePair<string, string>> Settings =>
    [
        new("Threshold A", Low.ToString(CultureInfo.InvariantCulture)),
        new("Threshold B", High.ToString(CultureInfo.InvariantCulture)),
    ];

    public RgbImage Apply(RgbImage photo) => CannyDetector.Detect(photo, Low, High, BlurSigma);
}

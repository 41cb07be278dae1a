using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Sdk;

namespace LatentDiffusion.TextEncoder.Tests;

/// <summary>Golden comparisons for the CLIP text model tests.</summary>
internal static class ClipTextAssert
{
    public static string TinyModel => SharedData.Fixture("textencoder/clip/sd_tiny_text_encoder");
    public static string GoldenFile => SharedData.Fixture("textencoder/clip/text_encoder.safetensors");

    public static Dictionary<string, Tensor> LoadGolden() => SafeTensorsFile.LoadFile(GoldenFile);

    public static void Free(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}


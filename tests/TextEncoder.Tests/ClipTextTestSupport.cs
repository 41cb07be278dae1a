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

    /// <summary>|actual − expected| ≤ atol + rtol·|expected| elementwise, no NaN/Inf; returns the max absolute error.</summary>
    public static double Close(Tensor actual, Tensor expected, double atol, double rtol, string what)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        using var a = actual.Detach().To(Device.CPU, DType.Float32).Contiguous();
        using var e = expected.Detach().To(Device.CPU, DType.Float32).Contiguous();
        var av = a.ToArray<float>();
        var ev = e.ToArray<float>();
        double maxError = 0;
        int bad = 0, worst = -1;
        for (int i = 0; i < av.Length; i++)
        {
            if (!float.IsFinite(av[i])) throw new XunitException($"{what}: element {i} is {av[i]}");
            double err = Math.Abs((double)av[i] - ev[i]);
            if (err > maxError) maxError = err;
            if (err > atol + rtol * Math.Abs(ev[i]) && (worst < 0 || err > Math.Abs((double)av[worst] - ev[worst]))) worst = i;
            if (err > atol + rtol * Math.Abs(ev[i])) bad++;
        }
        if (bad > 0)
            throw new XunitException($"{what}: {bad} of {av.Length} elements out of tolerance (atol {atol:G3}, rtol {rtol:G3}); max abs error {maxError:G4}; " +
                $"worst at flat index {worst}: actual {av[worst]:G9}, expected {ev[worst]:G9}");
        return maxError;
    }

    public static Dictionary<string, Tensor> LoadGolden() => SafeTensorsFile.LoadFile(GoldenFile);

    public static void Free(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}


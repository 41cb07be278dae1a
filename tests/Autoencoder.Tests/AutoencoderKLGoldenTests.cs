using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Autoencoder.Tests;

/// <summary>Golden check #4: the tiny SD VAE against diffusers 0.30.3 (float32, CPU).</summary>
public class AutoencoderKLGoldenTests(ITestOutputHelper output)
{
    // goldens/vae.safetensors tolerance in ../shared/golden/manifest.json.
    private const double Atol = 1e-4, Rtol = 1e-4;

    internal static string TinyVae => SharedData.Fixture("autoencoder/sd_tiny_vae");

    [Fact]
    public void EncodeMatchesDiffusers()
    {
        using var vae = AutoencoderKL.FromPretrained(TinyVae);
        using var golden = new Golden(SharedData.Fixture("autoencoder/vae.safetensors"));
        using var noGrad = Autograd.NoGrad();
        using var posterior = vae.Encode(golden["input.image"]);
        var mean = TensorAssert.Close(posterior.Mean, golden["output.encode.mean"], Atol, Rtol, "encode.mean");
        var logVar = TensorAssert.Close(posterior.LogVar, golden["output.encode.logvar"], Atol, Rtol, "encode.logvar");
        var std = TensorAssert.Close(posterior.Std, golden["output.encode.std"], Atol, Rtol, "encode.std");
        output.WriteLine($"max abs error: mean {mean:G3}, logvar {logVar:G3}, std {std:G3}");
    }

    [Fact]
    public void DecodeMatchesDiffusers()
    {
        using var vae = AutoencoderKL.FromPretrained(TinyVae);
        using var golden = new Golden(SharedData.Fixture("autoencoder/vae.safetensors"));
        using var noGrad = Autograd.NoGrad();
        using var sample = vae.Decode(golden["input.latents"]);
        var error = TensorAssert.Close(sample, golden["output.decode.sample"], Atol, Rtol, "decode.sample");
        output.WriteLine($"max abs error: decode {error:G3}");
    }
}

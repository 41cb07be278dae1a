using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Autoencoder.Tests;

/// <summary>TAESD architecture with the real TAEF2 weights (../shared/data/taef2, never copied into the repository).</summary>
public class AutoencoderTinyTests(ITestOutputHelper output)
{
    // The golden latents/images were computed from the fp16 weights upcast to fp32, in fp32 on the CPU
    // (PyTorch 1.13, one thread); data/README.md expects ~1e-4 absolute agreement.
    private const double Atol = 1e-4, Rtol = 1e-4;

    private static string Taef2(string file) => SharedData.Path("data/taef2/" + file);

    private static AutoencoderTiny LoadTaef2() => AutoencoderTiny.FromTaesd(Taef2("taef2_encoder.safetensors"), Taef2("taef2_decoder.safetensors"));

    [SharedDataFact]
    public void Taef2LoadsEveryTensorWithTaesdKeys()
    {
        using var taef2 = LoadTaef2();
        Assert.Equal(32, taef2.Config.LatentChannels);
        Assert.True(taef2.Config.UseMidblockGn);
        Assert.Equal(1_338_528, taef2.Encoder.ParameterCount);
        Assert.Equal(1_338_499, taef2.Decoder.ParameterCount);
        using var encoderFile = SafeTensorsFile.Open(Taef2("taef2_encoder.safetensors"));
        Assert.Equal(encoderFile.Keys.Order(StringComparer.Ordinal), taef2.Encoder.Layers.StateDict().Keys.Order(StringComparer.Ordinal));
        var decoderKeys = taef2.Decoder.Layers.StateDict().Keys.ToHashSet();
        Assert.Contains("0.weight", decoderKeys);                  // TAESD's 1.weight (after the Clamp)
        Assert.Contains("2.pool.1.bias", decoderKeys);             // TAESD's 3.pool.1.bias
        Assert.Contains("encoder.layers.11.pool.3.weight", taef2.StateDict().Keys);
        Assert.Contains("decoder.layers.18.weight", taef2.StateDict().Keys); // the final conv(64, 3)
    }

    [SharedDataFact]
    public void Taef2EncodeAndDecodeMatchTheReference()
    {
        using var taef2 = LoadTaef2();
        using var noGrad = Autograd.NoGrad();
        using var input = TestImages.ReadNpy(Taef2("golden_input.npy"));
        using var goldenLatent = TestImages.ReadNpy(Taef2("golden_latent.npy"));
        using var goldenDecoded = TestImages.ReadNpy(Taef2("golden_decoded.npy"));

        using var latent = taef2.EncodeFromUnitRange(input);
        var latentError = TensorAssert.Close(latent, goldenLatent, Atol, Rtol, "latent");
        using var decoded = taef2.DecodeToUnitRange(goldenLatent);
        var decodedError = TensorAssert.Close(decoded, goldenDecoded, Atol, Rtol, "decoded");

        using var roundTrip = taef2.DecodeToUnitRange(latent);
        using var clamped = roundTrip.Clamp(0, 1);
        var psnr = TestImages.Psnr(input, clamped);
        output.WriteLine($"TAEF2 golden: max abs error latent {latentError:G3}, decoded {decodedError:G3}; round trip PSNR {psnr:F2} dB on the 128×128 crop");
        Assert.True(psnr > 29, $"round-trip PSNR {psnr:F2} dB");

        // The diffusers convention is the same computation on [−1, 1].
        using var signed = input * 2 - 1;
        using var latentFromSigned = taef2.Encode(signed);
        TensorAssert.Close(latentFromSigned, goldenLatent, Atol, Rtol, "latent from [−1, 1]");
        using var decodedSigned = taef2.Decode(goldenLatent);
        using var back = (decodedSigned + 1) / 2;
        TensorAssert.Close(back, goldenDecoded, Atol, Rtol, "decoded to [−1, 1]");
    }

    [SharedDataTheory]
    [InlineData("astronaut.png", 30.5)]
    [InlineData("chelsea.png", 32)]
    [InlineData("coffee.png", 29)]
    public void Taef2RoundTripsThePhotos(string file, double minimumPsnr)
    {
        using var taef2 = LoadTaef2();
        using var noGrad = Autograd.NoGrad();
        using var image = TestImages.ReadPng(SharedData.Path("data/images/" + file));
        // Crop to a multiple of 8 (the encoder halves the size three times).
        var (h, w) = (image.Size(2) / 8 * 8, image.Size(3) / 8 * 8);
        using var cropped = image.Slice(2, 0, h).Slice(3, 0, w).Contiguous();
        using var latent = taef2.EncodeFromUnitRange(cropped);
        using var decoded = taef2.DecodeToUnitRange(latent);
        using var clamped = decoded.Clamp(0, 1);
        var psnr = TestImages.Psnr(cropped, clamped);
        output.WriteLine($"TAEF2 round trip of {file} ({w}×{h}): PSNR {psnr:F2} dB");
        Assert.True(psnr > minimumPsnr, $"{file}: PSNR {psnr:F2} dB");
    }

    [SharedDataFact]
    public void ThePngReaderReadsTheGoldenCropAsTheReferenceDid()
    {
        using var png = TestImages.ReadPng(Taef2("golden_input_astronaut_crop128.png"));
        using var npy = TestImages.ReadNpy(Taef2("golden_input.npy"));
        Assert.True(png.Equal(npy));
    }

    [Fact]
    public void DefaultConfigIsTaesdWithDiffusersKeys()
    {
        using var taesd = new AutoencoderTiny(AutoencoderTinyConfig.Taesd);
        var keys = taesd.StateDict().Keys.ToList();
        Assert.Contains("encoder.layers.0.weight", keys);
        Assert.Contains("encoder.layers.1.conv.4.bias", keys);
        Assert.DoesNotContain("encoder.layers.2.bias", keys);
        Assert.Contains("encoder.layers.14.weight", keys);
        Assert.Contains("decoder.layers.17.conv.0.weight", keys);
        Assert.DoesNotContain(keys, k => k.Contains("pool") || k.Contains("skip"));
        Assert.Equal([4, 64, 3, 3], taesd.Encoder.Layers.StateDict()["14.weight"].Shape);

        using var noGrad = Autograd.NoGrad();
        using var image = Tensors.Zeros([1, 3, 32, 32]);
        using var latents = taesd.Encode(image);
        Assert.Equal([1, 4, 4, 4], latents.Shape);
        using var decoded = taesd.Decode(latents);
        Assert.Equal([1, 3, 32, 32], decoded.Shape);
    }

    [Fact]
    public void SaveThenLoadRoundTripsDiffusersLayout()
    {
        var directory = Directory.CreateTempSubdirectory("ld-taesd-").FullName;
        try
        {
            using var g = new Generator(11);
            var config = AutoencoderTinyConfig.Taef1 with { NumEncoderBlocks = [1, 1, 1, 1], NumDecoderBlocks = [1, 1, 1, 1] };
            using var model = new AutoencoderTiny(config, g);
            model.Save(directory);
            Assert.Contains("\"block_out_channels\"", File.ReadAllText(Path.Combine(directory, "config.json")));
            using var loaded = AutoencoderTiny.FromPretrained(directory);
            Assert.Equal(16, loaded.Config.LatentChannels);
            var original = model.StateDict();
            foreach (var (name, tensor) in loaded.StateDict()) Assert.True(tensor.Equal(original[name]), name);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ScaleLatentsMapsToTheUnitIntervalAndBack()
    {
        using var taesd = new AutoencoderTiny(AutoencoderTinyConfig.Taesd);
        using var z = Tensor.From([-3f, 0f, 1.5f, 9f], 4);
        using var scaled = taesd.ScaleLatents(z);
        Assert.Equal([0f, 0.5f, 0.75f, 1f], scaled.ToArray<float>());
        using var back = taesd.UnscaleLatents(scaled);
        Assert.Equal([-3f, 0f, 1.5f, 3f], back.ToArray<float>());
    }

    [Fact]
    public void SlicingEqualsTheBatchedDecode()
    {
        using var g = new Generator(12);
        using var taesd = new AutoencoderTiny(AutoencoderTinyConfig.Taesd with { NumDecoderBlocks = [1, 1, 1, 1] }, g);
        using var noGrad = Autograd.NoGrad();
        using var z = Tensors.Randn([3, 4, 4, 4], g);
        using var batched = taesd.Decode(z);
        taesd.UseSlicing = true;
        using var sliced = taesd.Decode(z);
        Assert.True(TensorAssert.MaxAbsDifference(batched, sliced) < 1e-5);
    }
}

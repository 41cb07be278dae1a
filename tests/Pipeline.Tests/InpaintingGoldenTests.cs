using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>
/// Checks 5 and 6 of the v2 goldens: diffusers' StableDiffusionInpaintPipeline on the tiny model, with the 9-channel
/// inpainting U-Net (sd_inpaint_tiny, DDIM) and with the tiny model's own 4-channel U-Net (PNDM), strengths 1.0 and
/// 0.75, every noise draw injected in diffusers' order.
/// </summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class InpaintingGoldenTests(TinyStableDiffusion tiny, TinyInpainting inpainting, ITestOutputHelper output)
    : IClassFixture<TinyStableDiffusion>, IClassFixture<TinyInpainting>
{
    [Theory]
    [InlineData("9ch", "s100", 1.0, 5e-4)]
    [InlineData("9ch", "s075", 0.75, 2e-4)]
    [InlineData("4ch", "s100", 1.0, 3e-4)]
    [InlineData("4ch", "s075", 0.75, 2e-4)]
    public void InpaintingMatchesDiffusers(string unet, string strengthName, double strength, double latentAtol)
    {
        using var scope = DisposeScope.Enter();
        using var golden = SafeTensorsFile.Open(SharedData.Fixture($"pipeline/goldens/sd_inpaint_{unet}_{strengthName}.safetensors"));
        using var pipe = unet == "9ch" ? inpainting.Load() : tiny.Load();
        Assert.Equal(unet == "9ch" ? 9 : 4, pipe.Models.Denoiser.InChannels);

        var noise = golden.Keys.Where(k => k.StartsWith("noise.", StringComparison.Ordinal)).Order().Select(k => golden.Load(k)).ToList();
        var queue = new QueueNoise(noise);
        var request = new InpaintRequest
        {
            Prompt = "a photograph of an astronaut riding a horse",
            NegativePrompt = "blurry, low quality",
            Steps = 4,
            GuidanceScale = 7.5,
            Width = 64,
            Height = 64,
            Strength = strength,
            InitImage = Image(golden.Load("input.image_uint8"), 3),
            MaskImage = Image(golden.Load("input.mask_uint8"), 1),
        };
        var steps = new List<GenerationProgress>();
        using var result = pipe.Inpaint(request, new SyncProgress(steps.Add), noise: queue);

        Assert.Equal(0, queue.Remaining); // every draw diffusers made, no more
        Assert.Equal(golden.Load("timesteps").ToArray<long>().Select(t => (double)t), steps.Select(s => s.Timestep));
        var latents = TensorAssert.Close(result.Latents, golden.Load("output.latents"), latentAtol, 1e-4, "latents");
        var image = TensorAssert.Close(result.Pixels, golden.Load("output.image_np"), 1e-4, 1e-4, "image");
        output.WriteLine($"{unet} {strengthName}: latents max |Δ| {latents:E2} (atol {latentAtol:E0}), image {image:E2} (atol 1E-4)");
        Assert.Equal(strength, result.Parameters[0].Strength);
        Assert.Contains(new KeyValuePair<string, string>("Mask blur", "0"), result.Parameters[0].Extra);
    }

    /// <summary>An HWC (or HW) uint8 tensor as an image; one channel becomes gray RGB.</summary>
    internal static RgbImage Image(Tensor hwc, int channels)
    {
        var bytes = hwc.ToArray<byte>();
        int h = (int)hwc.Shape[0], w = (int)hwc.Shape[1];
        return channels == 1 ? RgbImage.FromGray(w, h, bytes) : new RgbImage(w, h, bytes);
    }
}

/// <summary>The tiny model with the 9-channel U-Net (sd_inpaint_tiny) and DDIM, as a StableDiffusionInpaintPipeline folder.</summary>
public sealed class TinyInpainting : IDisposable
{
    public string Directory { get; }

    public TinyInpainting() =>
        Directory = TinyStableDiffusionFolder.AssembleInpainting(System.IO.Directory.CreateTempSubdirectory("ld-sd-inpaint-").FullName);

    public StableDiffusionPipeline Load() => StableDiffusionPipeline.FromPretrained(Directory);

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}

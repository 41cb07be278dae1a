using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.Memory;
using LatentDiffusion.Pipeline.StableDiffusion;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

/// <summary>The memory guard: the estimate, the batch plan, and the Stable Diffusion pipeline refusing before it allocates.</summary>
[Collection(nameof(StableDiffusionCollection))]
public sealed class MemoryGuardTests(TinyStableDiffusion tiny) : IClassFixture<TinyStableDiffusion>
{
    private const double GB = 1e9;

    [Fact]
    public void TheEstimateOfAHugeSizeIsFiniteAndHugeAndOfATypicalOneIsModest()
    {
        var unet = new LatentUNet.UNet2DConditionModelConfig();
        var vae = new Autoencoder.AutoencoderKLConfig { BlockOutChannels = [128, 256, 512, 512], SampleSize = 512 };
        var attention = new AttentionCost(Fused: false);
        // 100000×100000: latents 12500² — far past a long in bytes of attention maps, still a finite double.
        var huge = MemoryEstimate.LatentUNetStep(unet, 12500, 12500, 2, 4, attention);
        Assert.True(double.IsFinite(huge) && huge > 1e18, $"{huge}");
        // SD 1.5 at 512×512 with CFG in float32: a few GB, as it needs in practice.
        var unet512 = MemoryEstimate.LatentUNetStep(unet, 64, 64, 2, 4, attention);
        var vae512 = MemoryEstimate.VaeDecode(vae, 512, 512, 1, 4, tiling: false, slicing: false, fusedAttention: false);
        Assert.InRange(unet512, 0.5 * GB, 8 * GB);
        Assert.InRange(vae512, 0.5 * GB, 8 * GB);
        // Slicing and tiling lower the estimate; fused attention drops the score maps.
        Assert.True(MemoryEstimate.LatentUNetStep(unet, 64, 64, 2, 4, new AttentionCost(false, 1)) < unet512);
        Assert.True(MemoryEstimate.LatentUNetStep(unet, 64, 64, 2, 4, new AttentionCost(true)) < unet512);
        Assert.True(MemoryEstimate.VaeDecode(vae, 4096, 4096, 1, 4, tiling: true, slicing: false, fusedAttention: false)
            < MemoryEstimate.VaeDecode(vae, 4096, 4096, 1, 4, tiling: false, slicing: false, fusedAttention: false) / 10);
    }

    /// <summary>
    /// On the CPU the binding's fused attention kernel never holds a score map, so a plan made while it is on counts
    /// none: SD 1.5 at 1024×1024 with CFG in float32 needs ~36 GB of score maps unfused, a few GB fused.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OnTheCpuTheFusedAttentionKernelDropsTheScoreMapsFromThePlan(bool fusedKernel)
    {
        using var mode = TorchRuntime.UseFusedCpuAttention(fusedKernel);
        var cost = AttentionCost.On(Device.CPU);
        Assert.Equal(TorchRuntime.HasFusedAttention || TorchRuntime.FusedCpuAttentionActive, cost.Fused);
        if (fusedKernel && TorchRuntime.FusedCpuAttentionActive) Assert.True(cost.Fused);
        var unet = new LatentUNet.UNet2DConditionModelConfig();
        var step = MemoryEstimate.LatentUNetStep(unet, 128, 128, 2, 4, cost);
        if (cost.Fused) Assert.InRange(step, 0.5 * GB, 8 * GB);
        else Assert.True(step > 20 * GB, $"{step / GB:F1} GB");
    }

    [Fact]
    public void ThePlanTakesTheLargestChunkThatFitsInHalfUpToTheCapAndRefusesInOneLine()
    {
        double PerImage(long n) => n * 1 * GB;
        Assert.Equal(4, BatchPlan.Choose(100, null, 8, PerImage, 0, 9 * GB, "64×64", []).ChunkSize);
        Assert.Equal(8, BatchPlan.Choose(100, null, 8, PerImage, 0, 1000 * GB, "64×64", []).ChunkSize);
        Assert.Equal(3, BatchPlan.Choose(3, null, 8, PerImage, 0, 1000 * GB, "64×64", []).ChunkSize);
        Assert.Equal(1, BatchPlan.Choose(5, null, 8, PerImage, 0, 1.5 * GB, "64×64", []).ChunkSize); // fits only in the whole
        Assert.Equal(5, BatchPlan.Choose(5, 5, 8, PerImage, 0, 5 * GB, "64×64", []).ChunkSize); // asked: the whole may be used

        var refused = Assert.Throws<MemoryLimitException>(() => BatchPlan.Choose(4, 4, 8, PerImage, 0, 2 * GB, "1024×1024", ["--vae-tiling", "a smaller size"]));
        Assert.Equal("1024×1024, 4 images: needs about 4 GB, 2 GB available (use --batch-size 1, --vae-tiling, or a smaller size)", refused.Message);
        var one = Assert.Throws<MemoryLimitException>(() => BatchPlan.Choose(1, null, 8, PerImage, 0.5 * GB, 1 * GB, "512×512", ["a smaller size"]));
        Assert.Equal("512×512, 1 image: needs about 1.5 GB, 1 GB available (use a smaller size)", one.Message);
        Assert.IsAssignableFrom<OutOfMemoryException>(one);
    }

    [Theory]
    [InlineData(100000, 100000)]
    [InlineData(65536, 65536)]
    [InlineData(8, 2147483640)]
    public void AHugeTextToImageRequestIsRefusedBeforeAllocating(int width, int height)
    {
        using var pipe = tiny.Load();
        var live = Tensor.LiveCount;
        var e = Assert.Throws<MemoryLimitException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Width = width, Height = height, Steps = 1 }));
        Assert.StartsWith($"{width}×{height}, 1 image: needs about ", e.Message);
        Assert.Contains(" available (use ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(Tensor.LiveCount <= live, "nothing was allocated");
    }

    [Fact]
    public void AHugeImageToImageRequestIsRefusedInsteadOfOverflowing()
    {
        using var pipe = tiny.Load();
        var init = RgbImage.Filled(16, 16, new Rgb(1, 2, 3));
        var request = new ImageToImageRequest { Prompt = "x", InitImage = init, Width = 100000, Height = 100000, Steps = 1 };
        var e = Assert.Throws<MemoryLimitException>(() => pipe.ImageToImage(request));
        Assert.StartsWith("100000×100000, 1 image: needs about ", e.Message);
    }

    [Fact]
    public void ManyImagesWithAnExplicitBatchThatCannotFitAreRefusedNamingTheBatch()
    {
        using var pipe = StableDiffusionPipeline.FromPretrained(tiny.Directory, new PipelineOptions { MemoryLimit = 50_000_000 });
        var e = Assert.Throws<MemoryLimitException>(() => pipe.TextToImage(new GenerationRequest { Prompt = "x", Steps = 1, NumImages = 1000, BatchSize = 1000 }));
        Assert.Contains("1000 images: needs about", e.Message);
        Assert.Contains("--batch-size 1", e.Message);
        Assert.Contains("50 MB available", e.Message);
    }

    [Fact]
    public void ResizingToAnImpossibleSizeIsAClearErrorNotAnOverflow()
    {
        var image = RgbImage.Filled(4, 4, new Rgb(0, 0, 0));
        var e = Assert.Throws<ArgumentException>(() => image.ResizeAndCrop(100000, 100000));
        Assert.Contains("100000×100000", e.Message);
        Assert.Throws<ArgumentException>(() => RgbImage.Filled(100000, 100000, new Rgb(0, 0, 0)));
        Assert.Throws<ArgumentException>(() => RgbImage.Filled(1, 1, new Rgb(0, 0, 0)).ResizeAndCrop(8, 1_000_000_000)); // the cover size overflows int
    }
}

using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Autoencoder.Tests;

[Collection(LiveTensorCount.Name)]
public class LeakTests
{
    /// <summary>Runs <paramref name="forward"/> once to warm up, then three times, and asserts no native tensor outlived it.</summary>
    private static void AssertNoLeak(Action forward)
    {
        forward();
        var before = LiveTensorCount.Settled();
        for (int i = 0; i < 3; i++) forward();
        Assert.Equal(before, LiveTensorCount.Settled());
    }

    [Fact]
    public void AutoencoderKLForwardsFreeTheirTemporaries()
    {
        using var vae = AutoencoderKL.FromPretrained(AutoencoderKLGoldenTests.TinyVae);
        using var g = new Generator(1);
        using var image = Tensors.Rand([2, 3, 64, 64], g);
        using var big = Tensors.Randn([1, 4, 12, 12], g);
        AssertNoLeak(() =>
        {
            using (var posterior = vae.Encode(image))
            using (var z = posterior.Sample(g))
            using (var decoded = vae.Decode(z))
            using (var kl = posterior.Kl())
            {
            }
            vae.UseTiling = true;
            vae.UseSlicing = true;
            using (var tiled = vae.Decode(big))
            using (var tiledPosterior = vae.Encode(image))
            using (var sliced = vae.Decode(big))
            {
            }
            vae.UseTiling = false;
            vae.UseSlicing = false;
        });
    }

    [Fact]
    public void AutoencoderTinyForwardsFreeTheirTemporaries()
    {
        using var g = new Generator(2);
        using var taef = new AutoencoderTiny(AutoencoderTinyConfig.Taef2 with { NumEncoderBlocks = [1, 1, 1, 1], NumDecoderBlocks = [1, 1, 1, 1] }, g);
        using var image = Tensors.Rand([2, 3, 32, 32], g);
        AssertNoLeak(() =>
        {
            using var latents = taef.Encode(image);
            using var decoded = taef.Decode(latents);
            using var unit = taef.DecodeToUnitRange(latents);
            taef.UseSlicing = !taef.UseSlicing;
        });
    }

    [Fact]
    public void TrainingStepsWithTheDiscriminatorFreeTheirTemporaries()
    {
        using var g = new Generator(3);
        using var vae = new AutoencoderKL(LossTests.TinyConfig, g);
        using var loss = new AutoencoderLoss(new AutoencoderLossOptions { UseDiscriminator = true, DiscriminatorStart = 0, DiscriminatorChannels = 8, DiscriminatorLayers = 2 }, generator: g);
        using var images = Tensors.Rand([2, 3, 32, 32], g);
        long step = 0;
        AssertNoLeak(() =>
        {
            using var scope = DisposeScope.Enter();
            vae.ZeroGrad();
            loss.ZeroGrad();
            using var posterior = vae.Encode(images);
            var reconstructions = vae.Decode(posterior.Sample(g));
            var (generatorLoss, _) = loss.GeneratorLoss(images, reconstructions, posterior, step, vae);
            generatorLoss.Backward();
            var (discriminatorLoss, _) = loss.DiscriminatorLoss(images, reconstructions, step++);
            discriminatorLoss.Backward();
        });
    }
}

using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Autoencoder.Tests;

public class DiagonalGaussianTests
{
    private static Tensor Moments() =>
        // μ = [0.5, −1], log σ² = [−40 (clamped to −30), 0.2] over a [1, 2·2, 1, 1] moment tensor... as [1, 4, 1, 1].
        Tensor.From([0.5f, -1f, -40f, 0.2f], 1, 4, 1, 1);

    [Fact]
    public void SplitsMomentsAndClampsTheLogVariance()
    {
        using var d = new DiagonalGaussianDistribution(Moments());
        Assert.Equal([0.5f, -1f], d.Mean.ToArray<float>());
        Assert.Equal([-30f, 0.2f], d.LogVar.ToArray<float>());
        Assert.Equal((float)Math.Exp(0.1), d.Std.ToArray<float>()[1], 6);
        Assert.Equal((float)Math.Exp(0.2), d.Var.ToArray<float>()[1], 6);
        using var mode = d.Mode();
        Assert.True(mode.Equal(d.Mean));
    }

    [Fact]
    public void KlIsHalfTheSumOfMeanSquarePlusVarianceMinusOneMinusLogVariance()
    {
        using var d = new DiagonalGaussianDistribution(Moments());
        using var kl = d.Kl();
        var expected = 0.5 * (0.25 + Math.Exp(-30) - 1 + 30 + 1 + Math.Exp(0.2) - 1 - 0.2);
        Assert.Equal([1], kl.Shape);
        Assert.Equal(expected, kl.Item(), 4);
        using var self = d.Kl(d);
        Assert.Equal(0, self.Item(), 6);
    }

    [Fact]
    public void SampleIsMeanPlusStdTimesNoiseAndAGeneratorDrawsTorchRandn()
    {
        using var d = new DiagonalGaussianDistribution(Moments());
        using var noise = Tensor.From([2f, -1f], 1, 2, 1, 1);
        using var z = d.Sample(noise);
        Assert.Equal(0.5f + (float)Math.Exp(-15) * 2f, z.ToArray<float>()[0], 6);
        Assert.Equal(-1f - (float)Math.Exp(0.1), z.ToArray<float>()[1], 6);

        using var g1 = new Generator(42);
        using var g2 = new Generator(42);
        using var drawn = d.Sample(g1);
        using var randn = Tensors.Randn([1, 2, 1, 1], g2);
        using var expected = d.Sample(randn);
        Assert.True(drawn.Equal(expected));
    }

    [Fact]
    public void DeterministicHasZeroSpreadAndKl()
    {
        using var d = new DiagonalGaussianDistribution(Moments(), deterministic: true);
        Assert.Equal([0f, 0f], d.Std.ToArray<float>());
        using var kl = d.Kl();
        Assert.Equal(0, kl.Item());
    }
}

using LatentDiffusion.Torch;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.Optim;
using Xunit;
using Xunit.Abstractions;

namespace LatentDiffusion.Autoencoder.Tests;

public class LossTests(ITestOutputHelper output)
{
    internal static AutoencoderKLConfig TinyConfig => new()
    {
        BlockOutChannels = [8, 16],
        DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        NormNumGroups = 4,
        LatentChannels = 4,
        LayersPerBlock = 1,
        SampleSize = 16,
    };

    [Fact]
    public void AFewStepsOnRandomDataReduceTheReconstructionLoss()
    {
        using var g = new Generator(7);
        using var vae = new AutoencoderKL(TinyConfig, g);
        using var loss = new AutoencoderLoss(new AutoencoderLossOptions { Reconstruction = ReconstructionLoss.L2 });
        using var images = Tensors.Rand([4, 3, 16, 16], g) * 2 - 1;
        using var optimizer = new AdamW(vae.Parameters().Append(loss.LogVar), learningRate: 5e-3);
        var first = double.NaN;
        var last = double.NaN;
        for (int step = 0; step < 15; step++)
        {
            using var scope = DisposeScope.Enter();
            optimizer.ZeroGrad();
            using var posterior = vae.Encode(images);
            var z = posterior.Sample(g);
            var reconstructions = vae.Decode(z);
            var (total, log) = loss.GeneratorLoss(images, reconstructions, posterior, step);
            total.Backward();
            optimizer.Step();
            if (step == 0) first = log.Reconstruction;
            last = log.Reconstruction;
            Assert.True(double.IsFinite(log.Total));
        }
        output.WriteLine($"mean squared reconstruction error: {first:G4} → {last:G4} after 15 AdamW steps");
        Assert.True(last < 0.8 * first, $"reconstruction loss went from {first} to {last}");
    }

    [Fact]
    public void DiscriminatorStepsRunWithAdaptiveWeightAndUpdateBatchNormStatistics()
    {
        using var g = new Generator(8);
        using var vae = new AutoencoderKL(TinyConfig, g);
        using var loss = new AutoencoderLoss(new AutoencoderLossOptions
        {
            UseDiscriminator = true, DiscriminatorStart = 1, DiscriminatorChannels = 8, DiscriminatorLayers = 2,
        }, generator: g);
        using var images = Tensors.Rand([2, 3, 32, 32], g) * 2 - 1;
        using var autoencoderOptimizer = new AdamW(vae.Parameters().Append(loss.LogVar), learningRate: 1e-3);
        using var discriminatorOptimizer = new AdamW(loss.Discriminator!.Parameters(), learningRate: 1e-3);
        var batchNorm = (BatchNorm2d)loss.Discriminator.Main[3];
        var runningMeanBefore = batchNorm.RunningMean.ToArray<float>();

        for (long step = 0; step < 3; step++)
        {
            using var scope = DisposeScope.Enter();
            using var posterior = vae.Encode(images);
            var reconstructions = vae.Decode(posterior.Sample(g));

            autoencoderOptimizer.ZeroGrad();
            var (generatorLoss, generatorLog) = loss.GeneratorLoss(images, reconstructions, posterior, step, vae);
            generatorLoss.Backward();
            autoencoderOptimizer.Step();

            discriminatorOptimizer.ZeroGrad();
            var (discriminatorLoss, discriminatorLog) = loss.DiscriminatorLoss(images, reconstructions, step);
            discriminatorLoss.Backward();
            discriminatorOptimizer.Step();

            output.WriteLine($"step {step}: total {generatorLog.Total:G4}, g {generatorLog.GeneratorLoss:G4}, λ {generatorLog.DiscriminatorWeight:G4}, " +
                $"factor {generatorLog.DiscriminatorFactor}, d {discriminatorLog.DiscriminatorLoss:G4}");
            Assert.Equal(step < 1 ? 0 : 1, generatorLog.DiscriminatorFactor);
            if (step >= 1)
            {
                Assert.True(generatorLog.DiscriminatorWeight > 0 && double.IsFinite(generatorLog.DiscriminatorWeight));
                Assert.True(discriminatorLog.DiscriminatorLoss > 0);
            }
        }
        Assert.NotEqual(runningMeanBefore, batchNorm.RunningMean.ToArray<float>());
        // Two forwards per discriminator step, one per generator step once the discriminator has started.
        Assert.Equal(3 * 2 + 2, batchNorm.NumBatchesTracked.ItemInt64());
    }

    [Fact]
    public void AdaptiveWeightIsTheGradientNormRatioAndLeavesGradientsAlone()
    {
        // rec = Σ (W x)², gan = Σ 3 W x over a 2 × 2 "last layer" W; ∇rec = 2 (W x) xᵀ, ∇gan = 3 · 1 xᵀ.
        using var w = Tensor.From([1f, 2f, 3f, 4f], 2, 2).RequiresGrad_();
        using var other = Tensor.From([0.5f], 1).RequiresGrad_();
        using var x = Tensor.From([1f, -1f], 2, 1);
        using var existing = Tensor.From([9f, 9f, 9f, 9f], 2, 2);
        w.Grad = existing;
        using var scope = DisposeScope.Enter();
        var wx = w.MatMul(x) * other;
        var rec = wx.Square().Sum();
        var gan = (wx * 3.0).Sum();

        var weight = VaeLosses.AdaptiveWeight(rec, gan, w, discriminatorWeight: 0.5);

        // W x · 0.5 = [−0.5, −0.5]; ∇rec = 2·(W x·0.5)·0.5·xᵀ, ∇gan = 3·0.5·1·xᵀ.
        var recGrad = new[] { -0.5, 0.5, -0.5, 0.5 };
        var ganGrad = new[] { 1.5, -1.5, 1.5, -1.5 };
        var expected = Norm(recGrad) / (Norm(ganGrad) + 1e-4) * 0.5;
        Assert.Equal(expected, weight, 6);
        Assert.Equal([9f, 9f, 9f, 9f], w.Grad!.ToArray<float>());
        Assert.Null(other.Grad);
        Assert.Equal(0.0, VaeLosses.AdaptiveWeight(rec * 0.0, gan, w));
        Assert.Equal(1e4, VaeLosses.AdaptiveWeight(rec * 2.0, gan * 0.0, w)); // ‖∇rec‖ / 10⁻⁴ = 2·10⁴, clamped
        // The graph is kept for the caller's backward pass: ∇_W (rec + gan) = [1, −1, 1, −1] is added to the 9s.
        (rec + gan).Backward();
        Assert.Equal([10f, 8f, 10f, 8f], w.Grad!.ToArray<float>());
    }

    private static double Norm(double[] v) => Math.Sqrt(v.Sum(e => e * e));

    [Fact]
    public void HingeAndGeneratorLossesFollowTheirFormulas()
    {
        using var real = Tensor.From([2f, 0.5f, -1f, 0f], 4);
        using var fake = Tensor.From([-2f, 0.5f, 1f, 0f], 4);
        using var hinge = VaeLosses.HingeDiscriminatorLoss(real, fake);
        // mean relu(1 − real) = (0 + 0.5 + 2 + 1) / 4; mean relu(1 + fake) = (0 + 1.5 + 2 + 1) / 4.
        Assert.Equal(0.5 * (3.5 / 4 + 4.5 / 4), hinge.Item(), 6);
        using var generator = VaeLosses.GeneratorLoss(fake);
        Assert.Equal(-(-2 + 0.5 + 1 + 0) / 4.0, generator.Item(), 6);
        using var vanilla = VaeLosses.VanillaDiscriminatorLoss(real, fake);
        double Softplus(double v) => Math.Log(1 + Math.Exp(v));
        var expected = 0.5 * (new[] { 2.0, 0.5, -1, 0 }.Average(v => Softplus(-v)) + new[] { -2.0, 0.5, 1, 0 }.Average(Softplus));
        Assert.Equal(expected, vanilla.Item(), 5);
        using var byKind = VaeLosses.DiscriminatorLoss(DiscriminatorLossKind.Hinge, real, fake);
        Assert.Equal(hinge.Item(), byKind.Item());
        using var vanillaByKind = VaeLosses.DiscriminatorLoss(DiscriminatorLossKind.Vanilla, real, fake);
        Assert.Equal(vanilla.Item(), vanillaByKind.Item());
        Assert.Equal(0, VaeLosses.AdoptWeight(1.0, 9, 10));
        Assert.Equal(1, VaeLosses.AdoptWeight(1.0, 10, 10));
    }

    [Fact]
    public void ReconstructionIsL1OrL2()
    {
        using var a = Tensor.From([1f, -2f], 2);
        using var b = Tensor.From([0.5f, 1f], 2);
        using var l1 = VaeLosses.Reconstruction(a, b, ReconstructionLoss.L1);
        using var l2 = VaeLosses.Reconstruction(a, b, ReconstructionLoss.L2);
        Assert.Equal([0.5f, 3f], l1.ToArray<float>());
        Assert.Equal([0.25f, 9f], l2.ToArray<float>());
    }

    [Fact]
    public void PatchGanHasTamingsLayersAndKeys()
    {
        using var d = new NLayerDiscriminator();
        // taming-transformers' NLayerDiscriminator(3, 64, 3) with BatchNorm: 2,765,633 parameters.
        Assert.Equal(2_765_633, d.ParameterCount);
        var keys = d.StateDict().Keys.ToList();
        Assert.Contains("main.0.bias", keys);
        Assert.DoesNotContain("main.2.bias", keys);
        Assert.Contains("main.3.running_mean", keys);
        Assert.Contains("main.3.num_batches_tracked", keys);
        Assert.Contains("main.11.bias", keys);
        using var noGrad = Autograd.NoGrad();
        d.Eval();
        using var x = Tensors.Zeros([1, 3, 64, 64]);
        using var logits = d.Forward(x);
        Assert.Equal([1, 1, 6, 6], logits.Shape); // 64 → 32 → 16 → 8 → 7 → 6 patches

        using var grouped = new NLayerDiscriminator(norm: DiscriminatorNorm.GroupNorm);
        Assert.Contains("main.2.bias", grouped.StateDict().Keys);
    }

    [Fact]
    public void BatchNormUpdatesRunningStatisticsLikePyTorch()
    {
        using var bn = new BatchNorm2d(1);
        using var x = Tensor.From([1f, 2f, 3f, 6f], 2, 1, 1, 2);
        using (var y = bn.Forward(x))
        {
            // batch mean 3, biased variance 3.5 normalises; the running variance uses the unbiased 14/3.
            Assert.Equal(0.3f, bn.RunningMean.ToArray<float>()[0], 6);
            Assert.Equal(0.9f + 0.1f * 14f / 3f, bn.RunningVar.ToArray<float>()[0], 5);
            Assert.Equal((float)((1 - 3) / Math.Sqrt(3.5 + 1e-5)), y.ToArray<float>()[0], 5);
        }
        bn.Eval();
        using var evaluated = bn.Forward(x);
        Assert.Equal((float)((1 - 0.3) / Math.Sqrt(0.9 + 0.1 * 14 / 3.0 + 1e-5)), evaluated.ToArray<float>()[0], 5);
        Assert.Equal(1, bn.NumBatchesTracked.ItemInt64());
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// torch.nn.functional against PyTorch: linear, convolutions, normalisation, embedding, softmax,
/// activations, dropout, resampling, padding, pooling. float32, atol 1e-5 / rtol 1e-5 unless a
/// comment says why an op needs more.
/// </summary>
public class OpsFunctionalTests
{
    [Fact]
    public void LinearWithAndWithoutBias()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("linear");
        Tensor x = c.In("x"), w = c.In("w");
        c.AssertOut("bias", Functional.Linear(x, w, c.In("b")));
        c.AssertOut("no_bias", Functional.Linear(x, w));
    }

    public static TheoryData<string> Conv2dOutputs => Reference.Outputs("conv2d");

    [Theory]
    [MemberData(nameof(Conv2dOutputs))]
    public void Conv2dStridePaddingDilationGroups(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("conv2d");
        Tensor x = c.In("x"), w = c.In("w"), b = c.In("b");
        Tensor result = output switch
        {
            "plain" => Functional.Conv2d(x, w, b),
            "stride2_pad1" => Functional.Conv2d(x, w, b, stride: 2, padding: 1),
            "dilation2_pad2" => Functional.Conv2d(x, w, b, padding: 2, dilation: 2),
            "groups2" => Functional.Conv2d(x, c.In("wg"), b, padding: 1, groups: 2),
            "no_bias" => Functional.Conv2d(x, w, null, padding: 1),
            "rect" => Functional.Conv2d(x, c.In("wr"), b, stride: (1, 2), padding: (0, 1), dilation: (2, 1)),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        // sums of 36 products (4 channels × 3 × 3); the CPU kernel may use another summation order
        c.AssertOut(output, result, atol: 3e-5, rtol: 1e-5);
    }

    public static TheoryData<string> ConvTransposeOutputs => Reference.Outputs("conv_transpose2d");

    [Theory]
    [MemberData(nameof(ConvTransposeOutputs))]
    public void ConvTranspose2dStrideOutputPaddingGroups(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("conv_transpose2d");
        Tensor x = c.In("x"), w = c.In("w"), b = c.In("b");
        Tensor result = output switch
        {
            "stride2" => Functional.ConvTranspose2d(x, w, b, stride: 2),
            "stride2_pad1_outpad1" => Functional.ConvTranspose2d(x, w, b, stride: 2, padding: 1, outputPadding: 1),
            "groups2" => Functional.ConvTranspose2d(x, c.In("wg"), c.In("b4"), stride: 2, padding: 1, groups: 2),
            "no_bias" => Functional.ConvTranspose2d(x, w, null, stride: 1, padding: 1),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        // same reason as conv2d
        c.AssertOut(output, result, atol: 3e-5, rtol: 1e-5);
    }

    [Fact]
    public void GroupNormWithAndWithoutAffine()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("group_norm");
        Tensor x = c.In("x"), w = c.In("w"), b = c.In("b");
        // normalised values: mean and variance of 18 values, then a division; a few ulps of slack
        c.AssertOut("affine", Functional.GroupNorm(x, 3, w, b, 1e-5), atol: 2e-5, rtol: 2e-5);
        c.AssertOut("plain", Functional.GroupNorm(x, 2), atol: 2e-5, rtol: 2e-5);
        c.AssertOut("eps_big", Functional.GroupNorm(x, 6, w, b, 0.1), atol: 2e-5, rtol: 2e-5);
    }

    [Fact]
    public void LayerNormOverOneAndTwoDimensions()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("layer_norm");
        var x = c.In("x");
        // as group norm
        c.AssertOut("affine", Functional.LayerNorm(x, [8], c.In("w"), c.In("b"), 1e-5), atol: 2e-5, rtol: 2e-5);
        c.AssertOut("two_dims", Functional.LayerNorm(x, [3, 8], eps: 1e-6), atol: 2e-5, rtol: 2e-5);
    }

    [Fact]
    public void EmbeddingLooksUpRows()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("embedding");
        c.AssertExact("out", Functional.Embedding(c.In("ids"), c.In("w")));
    }

    [Fact]
    public void SoftmaxAndLogSoftmax()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("softmax");
        var x = c.In("x");
        c.AssertOut("softmax_last", Functional.Softmax(x, -1));
        c.AssertOut("softmax_1", Functional.Softmax(x, 1));
        c.AssertOut("log_softmax_last", Functional.LogSoftmax(x, -1));
        c.AssertOut("log_softmax_0", Functional.LogSoftmax(x, 0));
    }

    public static TheoryData<string> ActivationOutputs => Reference.Outputs("activations");

    [Theory]
    [MemberData(nameof(ActivationOutputs))]
    public void Activations(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("activations");
        var x = c.In("x");
        Tensor result = output switch
        {
            "silu" => Functional.Silu(x),
            "gelu" => Functional.Gelu(x),
            "gelu_tanh" => Functional.Gelu(x, tanhApproximation: true),
            "quick_gelu" => Functional.QuickGelu(x),
            "relu" => Functional.Relu(x),
            "leaky_relu" => Functional.LeakyRelu(x, 0.2),
            "leaky_relu_default" => Functional.LeakyRelu(x),
            "sigmoid" => Functional.Sigmoid(x),
            "tanh" => Functional.Tanh(x),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    [Fact]
    public void DropoutIsTheIdentityWithPZeroOrOutsideTraining()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(1);
        var x = Tensors.Randn([4, 8], g);
        var expected = TensorAssert.Values(x);
        TensorAssert.Exact(Functional.Dropout(x, 0, training: true), expected, [4, 8]);
        TensorAssert.Exact(Functional.Dropout(x, 0.5, training: false), expected, [4, 8]);
        TensorAssert.Exact(Functional.Dropout(x, 1, training: false), expected, [4, 8]);
    }

    [Fact]
    public void DropoutWithPOneZeroesEverything()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([3, 5]);
        TensorAssert.Exact(Functional.Dropout(x, 1, training: true), new double[15], [3, 5]);
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.8)]
    public void DropoutInTrainingKeepsAboutOneMinusPScaledByItsInverse(double p)
    {
        using var scope = DisposeScope.Enter();
        const int n = 20000;
        var y = TensorAssert.Values(Functional.Dropout(Tensors.Ones([n]), p, training: true));
        double scale = 1 / (1 - p);
        int kept = 0;
        foreach (var v in y)
        {
            if (v == 0) continue;
            kept++;
            Assert.Equal(scale, v, 1e-5);
        }
        // the kept count is Binomial(n, 1 − p): allow five standard deviations
        double mean = n * (1 - p), sd = Math.Sqrt(n * p * (1 - p));
        Assert.InRange(kept, mean - 5 * sd, mean + 5 * sd);
    }

    [Fact]
    public void DropoutRejectsAProbabilityOutsideZeroToOne()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([2]);
        Assert.Throws<ArgumentOutOfRangeException>(() => Functional.Dropout(x, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => Functional.Dropout(x, -0.1));
    }

    public static TheoryData<string> InterpolateOutputs => Reference.Outputs("interpolate");

    [Theory]
    [MemberData(nameof(InterpolateOutputs))]
    public void InterpolateBySizeAndByScale(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("interpolate");
        Tensor x = c.In("x"), xd = c.In("xd");
        Tensor result = output switch
        {
            "nearest_size_6x8" => Functional.Interpolate(x, (6, 8)),
            "nearest_size_5x7" => Functional.Interpolate(x, (5, 7), InterpolationMode.Nearest),
            "nearest_scale_2" => Functional.Interpolate(x, 2.0),
            "nearest_scale_1_5" => Functional.Interpolate(x, 1.5, InterpolationMode.Nearest),
            "bilinear_size_5x7" => Functional.Interpolate(x, (5, 7), InterpolationMode.Bilinear),
            "bilinear_size_5x7_ac" => Functional.Interpolate(x, (5, 7), InterpolationMode.Bilinear, alignCorners: true),
            "bilinear_scale_2" => Functional.Interpolate(x, 2.0, InterpolationMode.Bilinear),
            "bilinear_scale_2_ac" => Functional.Interpolate(x, 2.0, InterpolationMode.Bilinear, alignCorners: true),
            "bilinear_down_0_5" => Functional.Interpolate(xd, 0.5, InterpolationMode.Bilinear),
            "bicubic_size_5x7" => Functional.Interpolate(x, (5, 7), InterpolationMode.Bicubic),
            "nearest_exact_size_5x7" => Functional.Interpolate(x, (5, 7), InterpolationMode.NearestExact),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    public static TheoryData<string> PadOutputs => Reference.Outputs("pad");

    [Theory]
    [MemberData(nameof(PadOutputs))]
    public void PadConstantReflectReplicateCircular(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("pad");
        Tensor x = c.In("x"), x3 = c.In("x3");
        Tensor result = output switch
        {
            "constant_last" => Functional.Pad(x, [1, 2], value: 0.5),
            "constant_2d" => Functional.Pad(x, [1, 1, 2, 0]),
            "constant_negative" => Functional.Pad(x, [-1, 0, 0, 1], PaddingMode.Constant, 9.0),
            "reflect_2d" => Functional.Pad(x, [2, 1, 1, 2], PaddingMode.Reflect),
            "replicate_2d" => Functional.Pad(x, [1, 2, 0, 1], PaddingMode.Replicate),
            "reflect_1d" => Functional.Pad(x3, [2, 3], PaddingMode.Reflect),
            "replicate_1d" => Functional.Pad(x3, [3, 1], PaddingMode.Replicate),
            "circular_2d" => Functional.Pad(x, [1, 1, 1, 1], PaddingMode.Circular),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertExact(output, result);
    }

    [Fact]
    public void PixelShuffleAndUnshuffleAreInverse()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("pixel_shuffle");
        var x = c.In("x");
        var shuffled = Functional.PixelShuffle(x, 2);
        c.AssertExact("shuffle", shuffled);
        c.AssertExact("unshuffle", Functional.PixelUnshuffle(c.In("xu"), 2));
        Assert.True(Functional.PixelUnshuffle(shuffled, 2).Equal(x));
    }

    public static TheoryData<string> PoolOutputs => Reference.Outputs("pool");

    [Theory]
    [MemberData(nameof(PoolOutputs))]
    public void Pooling(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("pool");
        var x = c.In("x");
        Tensor result = output switch
        {
            "avg_k2" => Functional.AvgPool2d(x, 2),
            "avg_k3_s2_p1" => Functional.AvgPool2d(x, 3, 2, 1),
            "avg_k2_s1" => Functional.AvgPool2d(x, 2, stride: 1),
            "max_k2" => Functional.MaxPool2d(x, 2),
            "max_k3_s2_p1" => Functional.MaxPool2d(x, 3, 2, 1),
            "adaptive_1x1" => Functional.AdaptiveAvgPool2d(x, (1, 1)),
            "adaptive_2x3" => Functional.AdaptiveAvgPool2d(x, (2, 3)),
            "adaptive_5x7" => Functional.AdaptiveAvgPool2d(x, (5, 7)),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    [Fact]
    public void BatchNormInEvaluationUsesTheRunningStatistics()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensor.From(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 }, 2, 2, 2, 1);
        var mean = TestUtil.F32([1, 2]);
        var variance = TestUtil.F32([4, 0.25f]);
        var y = Functional.BatchNorm(x, mean, variance, TestUtil.F32([2, 1]), TestUtil.F32([0, 10]), eps: 0);
        // (x − mean) / sqrt(var) · w + b per channel
        TensorAssert.Close(y, [0, 1, 12, 14, 4, 5, 20, 22], [2, 2, 2, 1]);
    }
}

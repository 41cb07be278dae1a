using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// scaled_dot_product_attention against PyTorch's math definition softmax(q kᵀ · scale + mask) v,
/// and the losses against torch.nn.functional.
/// </summary>
public class OpsAttentionAndLossTests
{
    public static TheoryData<string> AttentionOutputs => Reference.Outputs("sdpa");

    [Theory]
    [MemberData(nameof(AttentionOutputs))]
    public void ScaledDotProductAttention(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("sdpa");
        Tensor q = c.In("q"), k = c.In("k"), v = c.In("v");
        Tensor result = output switch
        {
            "no_mask" => Functional.ScaledDotProductAttention(q, k, v),
            "bool_mask" => Functional.ScaledDotProductAttention(q, k, v, c.In("bool_mask")),
            "float_mask" => Functional.ScaledDotProductAttention(q, k, v, c.In("float_mask")),
            "causal" => Functional.ScaledDotProductAttention(c.In("qc"), c.In("kc"), c.In("vc"), isCausal: true),
            "scale" => Functional.ScaledDotProductAttention(q, k, v, scale: 0.3),
            "scale_float_mask" => Functional.ScaledDotProductAttention(q, k, v, c.In("float_mask"), scale: 0.3),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        // a fused kernel (libtorch >= 2.1) computes the same math in another order: allow 1e-5 more
        double tol = TorchRuntime.HasFusedAttention ? 2e-5 : 1e-5;
        c.AssertOut(output, result, atol: tol, rtol: tol);
    }

    [Fact]
    public void AttentionWithTheDefaultScaleEqualsAnExplicitOneOverSqrtHeadDim()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("sdpa");
        Tensor q = c.In("q"), k = c.In("k"), v = c.In("v");
        var byDefault = Functional.ScaledDotProductAttention(q, k, v);
        var explicitScale = Functional.ScaledDotProductAttention(q, k, v, scale: 1 / Math.Sqrt(4));
        TensorAssert.Close(byDefault, TensorAssert.Values(explicitScale), explicitScale.Shape, 1e-6, 1e-6);
    }

    [Fact]
    public void CausalAttentionMatchesAnExplicitLowerTriangularBooleanMask()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("sdpa");
        Tensor q = c.In("qc"), k = c.In("kc"), v = c.In("vc");
        var mask = Tensors.Ones([4, 4], DType.Bool).Tril();
        var causal = Functional.ScaledDotProductAttention(q, k, v, isCausal: true);
        var masked = Functional.ScaledDotProductAttention(q, k, v, mask);
        TensorAssert.Close(causal, TensorAssert.Values(masked), masked.Shape, 1e-6, 1e-6);
    }

    public static TheoryData<string> LossOutputs => Reference.Outputs("losses");

    [Theory]
    [MemberData(nameof(LossOutputs))]
    public void RegressionLossesWithEveryReduction(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("losses");
        Tensor x = c.In("x"), y = c.In("y");
        var cut = output.LastIndexOf('_');
        var reduction = ParseReduction(output[(cut + 1)..]);
        Tensor result = output[..cut] switch
        {
            "mse" => Functional.MseLoss(x, y, reduction),
            "l1" => Functional.L1Loss(x, y, reduction),
            "smooth_l1" => Functional.SmoothL1Loss(x, y, reduction),
            "smooth_l1_beta05" => Functional.SmoothL1Loss(x, y, reduction, beta: 0.5),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    public static TheoryData<string> CrossEntropyOutputs => Reference.Outputs("cross_entropy");

    [Theory]
    [MemberData(nameof(CrossEntropyOutputs))]
    public void CrossEntropyWithLabelSmoothingAndIgnoreIndex(string output)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("cross_entropy");
        Tensor logits = c.In("logits"), target = c.In("target");
        var cut = output.LastIndexOf('_');
        var reduction = ParseReduction(output[(cut + 1)..]);
        Tensor result = output[..cut] switch
        {
            "ce" => Functional.CrossEntropy(logits, target, reduction),
            "ce_smooth" => Functional.CrossEntropy(logits, target, reduction, labelSmoothing: 0.1),
            "ce_ignore_default" => Functional.CrossEntropy(logits, c.In("target_ignore"), reduction),
            "ce_ignore_3" => Functional.CrossEntropy(logits, target, reduction, ignoreIndex: 3),
            "ce_ignore_3_smooth" => Functional.CrossEntropy(logits, target, reduction, ignoreIndex: 3, labelSmoothing: 0.2),
            _ => throw new ArgumentException($"untested output {output}"),
        };
        c.AssertOut(output, result);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("mean")]
    [InlineData("sum")]
    public void BinaryCrossEntropyWithLogits(string reduction)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("bce_with_logits");
        c.AssertOut(reduction, Functional.BinaryCrossEntropyWithLogits(c.In("x"), c.In("y"), ParseReduction(reduction)));
    }

    private static Reduction ParseReduction(string name) => name switch
    {
        "none" => Reduction.None,
        "mean" => Reduction.Mean,
        "sum" => Reduction.Sum,
        _ => throw new ArgumentException($"unknown reduction {name}"),
    };
}

using LatentDiffusion.Tests.Common;
using Xunit;
using Xunit.Sdk;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Finite-difference gradient checks in float64: autograd's gradient of L = Σ f(x) · r (r fixed
/// random weights, so that sums that are constant, like softmax's, still test something) against
/// central differences (L(x + ε) − L(x − ε)) / 2ε for every input element.
/// </summary>
public class GradCheckTests
{
    private const double Eps = 1e-6;
    // central differences in float64 with ε = 1e-6: truncation ~ε² and rounding ~1e-16/ε ≈ 1e-10
    private const double Atol = 1e-7, Rtol = 1e-6;

    private static Tensor Randn(Generator g, params long[] shape) => Tensors.Randn(shape, g, DType.Float64);

    /// <summary>Checks every element of every input of <paramref name="f"/>.</summary>
    private static void GradCheck(Func<Tensor[], Tensor> f, params Tensor[] inputs)
    {
        using var scope = DisposeScope.Enter();
        Tensor weights;
        using (var g = new Generator(99))
        using (Autograd.NoGrad())
        {
            var probe = f(inputs);
            weights = Randn(g, probe.Shape);
        }

        var leaves = inputs.Select(t => t.Detach().Clone().RequiresGrad_()).ToArray();
        var loss = (f(leaves) * weights).Sum();
        loss.Backward();

        var data = inputs.Select(TensorAssert.Values).ToArray();
        for (int i = 0; i < inputs.Length; i++)
        {
            var analytic = leaves[i].Grad ?? throw new XunitException($"input {i} received no gradient");
            var numeric = new double[data[i].Length];
            for (int j = 0; j < numeric.Length; j++)
            {
                double saved = data[i][j];
                data[i][j] = saved + Eps;
                double plus = Evaluate(f, inputs, data, i, weights);
                data[i][j] = saved - Eps;
                double minus = Evaluate(f, inputs, data, i, weights);
                data[i][j] = saved;
                numeric[j] = (plus - minus) / (2 * Eps);
            }
            Assert.Contains(numeric, v => Math.Abs(v) > 1e-3); // the check is not vacuous
            TensorAssert.Close(analytic, numeric, inputs[i].Shape, Atol, Rtol, $"gradient of input {i}");
        }
    }

    private static double Evaluate(Func<Tensor[], Tensor> f, Tensor[] inputs, double[][] data, int changed, Tensor weights)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var args = (Tensor[])inputs.Clone();
        args[changed] = Tensor.From(data[changed], inputs[changed].Shape);
        return (f(args) * weights).Sum().Item();
    }

    [Fact]
    public void MatMul()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(1);
        GradCheck(t => t[0].MatMul(t[1]), Randn(g, 2, 3, 4), Randn(g, 4, 2));
    }

    [Fact]
    public void Conv2d()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(2);
        GradCheck(t => Functional.Conv2d(t[0], t[1], t[2], stride: 2, padding: 1),
            Randn(g, 1, 2, 5, 5), Randn(g, 3, 2, 3, 3), Randn(g, 3));
        GradCheck(t => Functional.Conv2d(t[0], t[1], null, padding: 2, dilation: 2, groups: 2),
            Randn(g, 1, 4, 4, 4), Randn(g, 2, 2, 3, 3));
    }

    [Fact]
    public void GroupNorm()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(3);
        GradCheck(t => Functional.GroupNorm(t[0], 2, t[1], t[2]), Randn(g, 2, 4, 3, 3), Randn(g, 4), Randn(g, 4));
    }

    [Fact]
    public void LayerNorm()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(4);
        GradCheck(t => Functional.LayerNorm(t[0], [6], t[1], t[2]), Randn(g, 2, 3, 6), Randn(g, 6), Randn(g, 6));
    }

    [Fact]
    public void Softmax()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(5);
        GradCheck(t => Functional.Softmax(t[0], -1), Randn(g, 3, 5));
        GradCheck(t => Functional.LogSoftmax(t[0], 0), Randn(g, 3, 5));
    }

    [Fact]
    public void Gelu()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(6);
        GradCheck(t => Functional.Gelu(t[0]), Randn(g, 12) * 2.0);
        GradCheck(t => Functional.Gelu(t[0], tanhApproximation: true), Randn(g, 12) * 2.0);
    }

    [Fact]
    public void ScaledDotProductAttention()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(7);
        Tensor q = Randn(g, 1, 2, 3, 4), k = Randn(g, 1, 2, 5, 4), v = Randn(g, 1, 2, 5, 3), mask = Randn(g, 3, 5);
        GradCheck(t => Functional.ScaledDotProductAttention(t[0], t[1], t[2], mask), q, k, v);
        Tensor qc = Randn(g, 1, 1, 4, 4), kc = Randn(g, 1, 1, 4, 4), vc = Randn(g, 1, 1, 4, 2);
        GradCheck(t => Functional.ScaledDotProductAttention(t[0], t[1], t[2], isCausal: true, scale: 0.7), qc, kc, vc);
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Autograd: gradients against PyTorch's, grad modes, accumulation and graph retention.</summary>
public class AutogradTests
{
    /// <summary>loss = mean((tanh(x @ w) · Σ sigmoid(x))²) + 0.1 Σ x², as in make_ops_reference.py.</summary>
    private static Tensor CompositeLoss(Tensor x, Tensor w)
    {
        using var scope = DisposeScope.Enter();
        var gate = x.Sigmoid().Sum(1, keepDim: true);
        var main = (x.MatMul(w).Tanh() * gate).Pow(2).Mean();
        var reg = (x * x).Sum() * 0.1;
        return scope.Keep(main + reg);
    }

    [Fact]
    public void GradientsOfACompositeExpressionMatchTorch()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("composite");
        var x = c.In("x").RequiresGrad_();
        var w = c.In("w").RequiresGrad_();
        Assert.True(x.RequiresGrad);
        Assert.True(x.IsLeaf);
        Assert.Null(x.Grad);
        var loss = CompositeLoss(x, w);
        Assert.True(loss.RequiresGrad);
        Assert.False(loss.IsLeaf);
        c.AssertOut("loss", loss);
        loss.Backward();
        c.AssertOut("x_grad", x.Grad!);
        c.AssertOut("w_grad", w.Grad!);
    }

    [Fact]
    public void BackwardWithAnExplicitGradientForANonScalarOutput()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("explicit_gradient");
        var x = c.In("x").RequiresGrad_();
        var y = x * x * 3.0;
        y.Backward(c.In("g"));
        c.AssertOut("x_grad", x.Grad!);
    }

    [Fact]
    public void GradientsFlowThroughConvolutionNormalisationAndSoftmax()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("conv_chain");
        var w = c.In("w").RequiresGrad_();
        var b = c.In("b").RequiresGrad_();
        var h = Functional.Conv2d(c.In("x"), w, b, padding: 1);
        h = Functional.GroupNorm(Functional.Silu(h), 3);
        var p = Functional.Softmax(h.Flatten(2), -1);
        var loss = (p * Tensors.Arange(0, 16, 1, DType.Float32)).Sum();
        c.AssertOut("loss", loss, 2e-5, 2e-5);
        loss.Backward();
        // gradients through group norm divide by a small standard deviation: a few ulps more
        c.AssertOut("w_grad", w.Grad!, 5e-5, 1e-4);
        c.AssertOut("b_grad", b.Grad!, 5e-5, 1e-4);
    }

    [Fact]
    public void GradientsAccumulateOverTwoBackwardCalls()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("composite");
        var x = c.In("x").RequiresGrad_();
        var w = c.In("w").RequiresGrad_();
        CompositeLoss(x, w).Backward();
        CompositeLoss(x, w).Backward();
        var expected = c.Output("x_grad");
        TensorAssert.Close(x.Grad!, expected.Data.Select(v => 2 * v).ToArray(), expected.Shape);
    }

    [Fact]
    public void RetainGraphAllowsASecondBackwardThroughTheSameGraph()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("composite");
        var x = c.In("x").RequiresGrad_();
        var w = c.In("w").RequiresGrad_();
        var loss = CompositeLoss(x, w);
        loss.Backward(retainGraph: true);
        loss.Backward();
        var expected = c.Output("w_grad");
        TensorAssert.Close(w.Grad!, expected.Data.Select(v => 2 * v).ToArray(), expected.Shape);
        // and without it the graph is gone: libtorch's error, reported as a TorchException
        var e = Assert.Throws<TorchException>(() => loss.Backward());
        TestUtil.AssertCleanMessage(e, "backward");
        Assert.Contains("second time", e.Message);
    }

    [Fact]
    public void AutogradGradGivesTheGradientsWithoutAccumulatingThem()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("composite");
        var x = c.In("x").RequiresGrad_();
        var w = c.In("w").RequiresGrad_();
        var loss = CompositeLoss(x, w);
        var grads = Autograd.Grad([loss], [w, x], retainGraph: true);
        c.AssertOut("w_grad", grads[0]!);
        c.AssertOut("x_grad", grads[1]!);
        Assert.Null(w.Grad);
        Assert.Null(x.Grad);
        Assert.False(grads[0]!.RequiresGrad);
        // The graph was retained: a backward pass through it still works and agrees.
        loss.Backward();
        Assert.True(w.Grad!.Equal(grads[0]!));
        // Now it is freed, which libtorch reports as usual.
        var e = Assert.Throws<TorchException>(() => Autograd.Grad(loss, w));
        TestUtil.AssertCleanMessage(e, "autograd_grad");
    }

    [Fact]
    public void AutogradGradWeightsNonScalarOutputsAndReportsUnusedInputs()
    {
        using var scope = DisposeScope.Enter();
        var x = TestUtil.F32([1, 2, 3]).RequiresGrad_();
        var unused = TestUtil.F32([4]).RequiresGrad_();
        var y = x * x;
        var z = x.Sum();
        // d(Σ g·x² + 2·Σ x)/dx = 2 g x + 2.
        var grads = Autograd.Grad([y, z], [x, unused], [TestUtil.F32([1, 0, -1]), Tensors.Full([], 2.0)], retainGraph: true, allowUnused: true);
        TensorAssert.Exact(grads[0]!, [4, 2, -4], [3]);
        Assert.Null(grads[1]);
        var e = Assert.Throws<TorchException>(() => Autograd.Grad([z], [unused], retainGraph: true));
        Assert.Contains("not have been used", e.Message);
        // Second order: d/dx of (dΣx³/dx = 3x²) summed is 6x.
        var cube = (x * x * x).Sum();
        var first = Autograd.Grad([cube], [x], createGraph: true)[0]!;
        Assert.True(first.RequiresGrad);
        TensorAssert.Exact(Autograd.Grad(first.Sum(), x), [6, 12, 18], [3]);
        Assert.Throws<ArgumentException>(() => Autograd.Grad([y], [x], [null, null]));
    }

    [Fact]
    public void ZeroGradDropsTheGradient()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([3]).RequiresGrad_();
        (x * 2.0).Sum().Backward();
        TensorAssert.Exact(x.Grad!, [2, 2, 2], [3]);
        x.ZeroGrad();
        Assert.Null(x.Grad);
        (x * 5.0).Sum().Backward();
        TensorAssert.Exact(x.Grad!, [5, 5, 5], [3]);
    }

    [Fact]
    public void GradCanBeSetAndCleared()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Zeros([2]).RequiresGrad_();
        x.Grad = TestUtil.F32([0.5f, -1]);
        TensorAssert.Exact(x.Grad!, [0.5, -1], [2]);
        x.Grad = null;
        Assert.Null(x.Grad);
    }

    [Fact]
    public void DetachCutsTheGraphButSharesData()
    {
        using var scope = DisposeScope.Enter();
        var x = TestUtil.F32([1, 2, 3]).RequiresGrad_();
        var y = x * 2.0;
        var d = y.Detach();
        Assert.False(d.RequiresGrad);
        Assert.True(d.IsLeaf);
        var loss = (d * x).Sum(); // gradient flows only through x, with d as a constant
        loss.Backward();
        TensorAssert.Exact(x.Grad!, [2, 4, 6], [3]);
        var xd = x.Detach();
        xd.Zero_();
        Assert.Equal(0.0, x.Sum().Item()); // the detached tensor shares storage
    }

    [Fact]
    public void RequiresGradCanBeSwitchedOff()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([2]);
        Assert.False(x.RequiresGrad);
        x.RequiresGrad = true;
        Assert.True((x * 3.0).RequiresGrad);
        x.RequiresGrad = false;
        Assert.False((x * 3.0).RequiresGrad);
    }

    [Fact]
    public void NoGradScopeRecordsNothingAndRestoresTheMode()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([2]).RequiresGrad_();
        Assert.True(Autograd.IsGradEnabled);
        Tensor y;
        using (Autograd.NoGrad())
        {
            Assert.False(Autograd.IsGradEnabled);
            y = x * 3.0;
            Assert.False(y.RequiresGrad);
            using (Autograd.EnableGrad())
            {
                Assert.True(Autograd.IsGradEnabled);
                var z = x * 3.0;
                Assert.True(z.RequiresGrad);
                z.Sum().Backward();
            }
            Assert.False(Autograd.IsGradEnabled);
        }
        Assert.True(Autograd.IsGradEnabled);
        Assert.Null(y.Grad);
        TensorAssert.Exact(x.Grad!, [3, 3], [2]);
        var e = Assert.Throws<TorchException>(() => y.Sum().Backward());
        TestUtil.AssertCleanMessage(e, "backward");
        Assert.Contains("does not require grad", e.Message);
    }

    [Fact]
    public void InferenceModeScopeRecordsNothingAndRestoresTheMode()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Ones([2]).RequiresGrad_();
        Tensor y;
        using (Autograd.InferenceMode())
        {
            Assert.False(Autograd.IsGradEnabled);
            y = x * 2.0;
            Assert.False(y.RequiresGrad);
            TensorAssert.Exact(y, [2, 2], [2]);
        }
        Assert.True(Autograd.IsGradEnabled);
        Assert.True((x * 2.0).RequiresGrad);
        // an inference tensor may not be saved for backward outside inference mode
        var e = Assert.Throws<TorchException>(() => (y * x).Sum().Backward());
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void NestedNoGradScopesRestoreInOrder()
    {
        Assert.True(Autograd.IsGradEnabled);
        var outer = Autograd.NoGrad();
        var inner = Autograd.NoGrad();
        inner.Dispose();
        Assert.False(Autograd.IsGradEnabled);
        outer.Dispose();
        Assert.True(Autograd.IsGradEnabled);
    }
}

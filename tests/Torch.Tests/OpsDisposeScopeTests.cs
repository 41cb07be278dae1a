using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// DisposeScope frees native tensors deterministically. These tests count live native handles, a
/// process-wide number, so they run alone (after the parallel tests).
/// </summary>
[Collection(ProcessWideStateCollection.Name)]
public class OpsDisposeScopeTests
{
    /// <summary>The live count once every unreachable tensor of earlier tests has been finalised.</summary>
    private static long Settled()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Tensor.LiveCount;
    }

    [Fact]
    public void TensorsCreatedInsideAScopeAreFreedAtItsEnd()
    {
        long before = Settled();
        Tensor a, b;
        using (var scope = DisposeScope.Enter())
        {
            a = Tensors.Ones([3, 3]);
            b = (a * 2.0).MatMul(a).Sum(0);
            var parts = a.Chunk(3);
            Assert.Equal(3, parts.Length);
            Assert.Equal(before + 7, Tensor.LiveCount); // a, a·2, matmul, sum and three chunks
            Assert.Equal(7, scope.Count);
        }
        Assert.True(a.IsDisposed);
        Assert.True(b.IsDisposed);
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void KeepMovesATensorToTheOuterScope()
    {
        long before = Settled();
        Tensor kept;
        using (var outer = DisposeScope.Enter())
        {
            using (var inner = DisposeScope.Enter())
            {
                var x = Tensors.Randn([4]);
                kept = inner.Keep(x.Exp() + 1.0);
                Assert.Equal(before + 3, Tensor.LiveCount);
            }
            Assert.False(kept.IsDisposed);
            Assert.Equal(before + 1, Tensor.LiveCount);
            Assert.Equal(1, outer.Count);
            Assert.Equal(4, kept.NumEl);
        }
        Assert.True(kept.IsDisposed);
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void KeepMovesAListOfTensorsTogether()
    {
        long before = Settled();
        using (var outer = DisposeScope.Enter())
        {
            IReadOnlyList<Tensor> parts;
            using (var inner = DisposeScope.Enter())
            {
                var x = Tensors.Arange(0, 6, 1, DType.Float32);
                parts = inner.Keep(x.Chunk(3));
            }
            Assert.Equal(3, outer.Count);
            Assert.All(parts, p => Assert.False(p.IsDisposed));
            Assert.Equal(before + 3, Tensor.LiveCount);
            Assert.Equal(9.0, parts[2].Sum().Item());
        }
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void KeepInTheOutermostScopeHandsOwnershipToTheCaller()
    {
        long before = Settled();
        Tensor kept;
        using (var scope = DisposeScope.Enter())
        {
            kept = scope.Keep(Tensors.Zeros([2]));
            Assert.Equal(0, scope.Count);
        }
        Assert.False(kept.IsDisposed);
        Assert.Equal(before + 1, Tensor.LiveCount);
        kept.Dispose();
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void NestedScopesFreeTheirOwnTensorsOnly()
    {
        long before = Settled();
        Tensor v, i;
        using (var outer = DisposeScope.Enter())
        {
            var a = Tensors.Ones([2]);
            using (var inner = DisposeScope.Enter())
            {
                Assert.Same(inner, DisposeScope.Current);
                var b = a + 1.0;
                var c = b * b;
                Assert.Equal(2, inner.Count);
                Assert.Equal(before + 3, Tensor.LiveCount);
            }
            Assert.Same(outer, DisposeScope.Current);
            Assert.False(a.IsDisposed);
            Assert.Equal(before + 1, Tensor.LiveCount);
            (v, i) = outer.Keep(a.Max(0));
            Assert.Equal(before + 3, Tensor.LiveCount);
        }
        Assert.Null(DisposeScope.Current);
        Assert.Equal(before + 2, Tensor.LiveCount); // the kept pair now belongs to the caller
        v.Dispose();
        i.Dispose();
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void DisposingATensorEarlyInsideAScopeIsSafe()
    {
        long before = Settled();
        using (var scope = DisposeScope.Enter())
        {
            var t = Tensors.Ones([5]);
            t.Dispose();
            t.Dispose(); // twice is harmless
            Assert.Equal(0, scope.Count);
            Assert.Equal(before, Tensor.LiveCount);
            var u = Tensors.Ones([5]).DetachFromDisposeScope();
            Assert.Equal(0, scope.Count);
            scope.Dispose();
            Assert.False(u.IsDisposed);
            u.Dispose();
        }
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void ALongLoopKeepsTheLiveCountFlat()
    {
        long before = Settled();
        using var g = new Generator(0);
        var x = Tensors.Randn([8, 8], g).DetachFromDisposeScope();
        for (int step = 0; step < 200; step++)
        {
            using var scope = DisposeScope.Enter();
            var h = Functional.Silu(x.MatMul(x.T())) * 0.01;
            var next = Functional.LayerNorm(x + h, [8]);
            x.Dispose();
            x = scope.Keep(next);
            Assert.Equal(before + 1 + scope.Count, Tensor.LiveCount);
        }
        Assert.Equal(before + 1, Tensor.LiveCount);
        x.Dispose();
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void OperationsThatFailLeakNothing()
    {
        long before = Settled();
        using (var scope = DisposeScope.Enter())
        {
            var a = Tensors.Ones([2, 3]);
            for (int i = 0; i < 10; i++)
                Assert.Throws<TorchException>(() => a.MatMul(a));
            Assert.Equal(before + 1, Tensor.LiveCount);
        }
        Assert.Equal(before, Tensor.LiveCount);
    }

    [Fact]
    public void GradAndAliasHandlesAreCountedAndFreed()
    {
        long before = Settled();
        using (var scope = DisposeScope.Enter())
        {
            var x = Tensors.Ones([3]).RequiresGrad_();
            (x * 2.0).Sum().Backward();
            var g1 = x.Grad!;
            var alias = x.Alias();
            Assert.Equal(2.0, g1[0].Item());
            Assert.False(alias.IsDisposed);
        }
        Assert.Equal(before, Settled());
    }
}

[Collection(ProcessWideStateCollection.Name)]
public class ThreadSettingTests
{
    [Fact]
    public void ThreadCountStaysAsSetWhileFurtherNativeFunctionsAreBound()
    {
        var original = TorchRuntime.Threads;
        try
        {
            TorchRuntime.Threads = 1;
            // Functions bound for the first time after the setting must not bring the default back.
            using var x = Tensors.Arange(0, 12, 1, DType.Float32).Reshape(3, 4);
            using var rolled = x.Roll(1, 0);
            using var nz = x.Nonzero();
            var (values, indices) = x.TopK(2);
            values.Dispose();
            indices.Dispose();
            Assert.Equal(1, TorchRuntime.Threads);
        }
        finally
        {
            TorchRuntime.Threads = original;
        }
    }
}

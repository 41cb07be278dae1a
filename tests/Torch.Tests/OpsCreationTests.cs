using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>zeros, ones, full, empty, arange, linspace and the *_like factories.</summary>
public class OpsCreationTests
{
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float64)]
    [InlineData(DType.Int64)]
    [InlineData(DType.Int32)]
    [InlineData(DType.UInt8)]
    [InlineData(DType.Bool)]
    public void ZerosOnesFullAndEmptyHaveTheShapeDTypeAndValues(DType dtype)
    {
        using var scope = DisposeScope.Enter();
        long[] shape = [2, 3, 4];
        var zeros = Tensors.Zeros(shape, dtype);
        var ones = Tensors.Ones(shape, dtype);
        var full = Tensors.Full(shape, dtype == DType.Bool ? 1 : 3, dtype);
        var empty = Tensors.Empty(shape, dtype);
        foreach (var t in new[] { zeros, ones, full, empty })
        {
            Assert.Equal(dtype, t.DType);
            Assert.Equal(shape, t.Shape);
            Assert.Equal(24, t.NumEl);
            Assert.Equal(Device.CPU, t.Device);
            Assert.True(t.IsContiguous);
            Assert.False(t.RequiresGrad);
        }
        TensorAssert.Exact(zeros, new double[24], shape);
        TensorAssert.Exact(ones, Enumerable.Repeat(1.0, 24).ToArray(), shape);
        TensorAssert.Exact(full, Enumerable.Repeat(dtype == DType.Bool ? 1.0 : 3.0, 24).ToArray(), shape);
        Assert.Equal(24 * dtype.ElementSize(), empty.ToBytes().Length);
    }

    [Fact]
    public void FullMatchesTorch()
    {
        using var scope = DisposeScope.Enter();
        Reference.Case("full_float").AssertExact("out", Tensors.Full([2, 3], 1.25));
        Reference.Case("full_int64").AssertExact("out", Tensors.Full([4], 7, DType.Int64));
    }

    [Fact]
    public void ScalarIsZeroDimensional()
    {
        using var scope = DisposeScope.Enter();
        var s = Tensors.Scalar(2.5);
        Assert.Equal(0, s.Dim);
        Assert.Empty(s.Shape);
        Assert.Equal(1, s.NumEl);
        Assert.Equal(2.5, s.Item());
        Assert.Equal(DType.Int64, Tensors.Scalar(3, DType.Int64).DType);
    }

    [Fact]
    public void EmptyWithAZeroDimensionHoldsNothing()
    {
        using var scope = DisposeScope.Enter();
        var e = Tensors.Empty([3, 0, 2]);
        Assert.Equal([3L, 0, 2], e.Shape);
        Assert.Equal(0, e.NumEl);
        Assert.Empty(e.ToArray<float>());
    }

    [Theory]
    [InlineData("arange_int")]
    [InlineData("arange_float_step")]
    [InlineData("arange_negative_step")]
    [InlineData("arange_float64")]
    public void ArangeMatchesTorch(string name)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case(name);
        var dtype = RefTensor.DTypeOf(c.String("dtype"));
        c.AssertExact("out", Tensors.Arange(c.Double("start"), c.Double("end"), c.Double("step"), dtype));
    }

    [Fact]
    public void ArangeWithOnlyAnEndCountsFromZeroAsInt64()
    {
        using var scope = DisposeScope.Enter();
        Reference.Case("arange_int").AssertExact("out", Tensors.Arange(7));
    }

    [Fact]
    public void LinspaceMatchesTorchBitForBit()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("linspace_7");
        c.AssertExact("out", Tensors.Linspace(c.Double("start"), c.Double("end"), c.Long("steps")));
        c = Reference.Case("linspace_1");
        c.AssertExact("out", Tensors.Linspace(c.Double("start"), c.Double("end"), c.Long("steps")));
        // libtorch fills the first half from the start and the second from the end: every value must agree
        c = Reference.Case("linspace_1000");
        var all = Tensors.Linspace(c.Double("start"), c.Double("end"), c.Long("steps"));
        c.AssertExact("out", all.Slice(0, 0, long.MaxValue, c.Long("every")));
    }

    [Fact]
    public void LikeFactoriesCopyShapeAndDType()
    {
        using var scope = DisposeScope.Enter();
        var src = Tensors.Ones([2, 5], DType.Float16);
        var zl = Tensors.ZerosLike(src);
        var ol = Tensors.OnesLike(src);
        var fl = Tensors.FullLike(src, -2);
        var el = Tensors.EmptyLike(src);
        foreach (var t in new[] { zl, ol, fl, el })
        {
            Assert.Equal(DType.Float16, t.DType);
            Assert.Equal([2L, 5], t.Shape);
        }
        TensorAssert.Exact(zl, new double[10], [2, 5]);
        TensorAssert.Exact(ol, Enumerable.Repeat(1.0, 10).ToArray(), [2, 5]);
        TensorAssert.Exact(fl, Enumerable.Repeat(-2.0, 10).ToArray(), [2, 5]);
    }

    [Fact]
    public void FillZeroAndCopyWriteInPlace()
    {
        using var scope = DisposeScope.Enter();
        var t = Tensors.Zeros([2, 2]);
        Assert.Same(t, t.Fill_(4.5));
        TensorAssert.Exact(t, [4.5, 4.5, 4.5, 4.5], [2, 2]);
        t.Zero_();
        TensorAssert.Exact(t, [0, 0, 0, 0], [2, 2]);
        t.CopyFrom(TestUtil.F32([1, 2], 2)); // broadcasts like copy_
        TensorAssert.Exact(t, [1, 2, 1, 2], [2, 2]);
        var clone = t.Clone();
        t.Fill_(0);
        TensorAssert.Exact(clone, [1, 2, 1, 2], [2, 2]);
        Assert.True(clone.Equal(TestUtil.F32([1, 2, 1, 2], 2, 2)));
        Assert.False(clone.Equal(TestUtil.F32([1, 2, 1, 3], 2, 2)));
    }
}

public class ArangeInferenceTests
{
    [Fact]
    public void ArangeInfersFloatForFractionalBoundsLikeTorch()
    {
        using var f = Tensors.Arange(0, 1, 0.25);
        Assert.Equal(DType.Float32, f.DType);
        Assert.Equal([0f, 0.25f, 0.5f, 0.75f], f.ToArray<float>());
        using var i = Tensors.Arange(5);
        Assert.Equal(DType.Int64, i.DType);
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>dtype conversions, data round trips and Item.</summary>
public class OpsDTypeTests
{
    [Theory]
    [InlineData("to_float16")]
    [InlineData("to_bfloat16")]
    [InlineData("to_int64")]
    [InlineData("to_int32")]
    [InlineData("to_bool")]
    [InlineData("to_float64")]
    [InlineData("to_uint8")]
    [InlineData("int64_to_float32")]
    [InlineData("int64_to_int32")]
    [InlineData("bool_to_float32")]
    [InlineData("uint8_to_int32")]
    [InlineData("float16_to_float32")]
    [InlineData("bfloat16_to_float32")]
    public void ToDTypeConvertsLikeTorch(string name)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case(name);
        var x = c.In("x");
        var y = x.To(RefTensor.DTypeOf(c.String("dtype")));
        // conversions are exact (rounding to nearest even for float16 / bfloat16, truncation for integers)
        c.AssertExact("out", y);
    }

    [Fact]
    public void ToTheSameDTypeReturnsTheSameDataUnlessCopyIsAsked()
    {
        using var scope = DisposeScope.Enter();
        var x = TestUtil.F32([1, 2, 3]);
        var same = x.To(DType.Float32);
        var copy = x.To(DType.Float32, copy: true);
        x.Fill_(9);
        TensorAssert.Exact(same, [9, 9, 9], [3]);
        TensorAssert.Exact(copy, [1, 2, 3], [3]);
        Assert.Equal(DType.Float32, x.Float().DType);
    }

    [Fact]
    public void HalfPrecisionArithmeticMatchesTorch()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("bfloat16_add");
        c.AssertExact("out", c.In("a") + c.In("b"));
        c = Reference.Case("float16_mul");
        c.AssertExact("out", c.In("a") * c.In("b"));
    }

    [Fact]
    public void FromAndToArrayRoundTripEveryElementType()
    {
        using var scope = DisposeScope.Enter();
        RoundTrip(new[] { 1.5f, -2.25f, float.MaxValue, float.Epsilon, float.NaN, float.NegativeInfinity }, DType.Float32);
        RoundTrip(new[] { Math.PI, -1e300, double.Epsilon }, DType.Float64);
        RoundTrip(new[] { long.MinValue, -1L, 0L, long.MaxValue }, DType.Int64);
        RoundTrip(new[] { int.MinValue, 7, int.MaxValue }, DType.Int32);
        RoundTrip(new byte[] { 0, 128, 255 }, DType.UInt8);
        RoundTrip(new[] { true, false, true, true }, DType.Bool);
        RoundTrip(new[] { (Half)0.1f, (Half)(-65504f), Half.Epsilon }, DType.Float16);
        RoundTrip(new sbyte[] { -128, 5, 127 }, DType.Int8);
        RoundTrip(new short[] { -32768, 5, 32767 }, DType.Int16);
    }

    private static void RoundTrip<T>(T[] data, DType dtype) where T : unmanaged
    {
        var t = Tensor.From(data, data.Length);
        Assert.Equal(dtype, t.DType);
        Assert.Equal([(long)data.Length], t.Shape);
        Assert.Equal(data, t.ToArray<T>());
        var bytes = t.ToBytes();
        Assert.Equal(data.Length * dtype.ElementSize(), bytes.Length);
        using var back = Tensor.FromBytes(bytes, dtype, data.Length);
        Assert.Equal(data, back.ToArray<T>());
    }

    [Fact]
    public void FromKeepsTheShapeAndRowMajorOrder()
    {
        using var scope = DisposeScope.Enter();
        var t = Tensor.From(new float[] { 0, 1, 2, 3, 4, 5 }, 2, 3);
        Assert.Equal([2L, 3], t.Shape);
        Assert.Equal(5f, t.Select(0, 1).Select(0, 2).ItemFloat());
        // a non-contiguous view is copied out in logical (row-major) order
        var tr = t.T();
        Assert.False(tr.IsContiguous);
        Assert.Equal([0f, 3, 1, 4, 2, 5], tr.ToArray<float>());
        Assert.Equal([3L, 1], t.Strides);
        Assert.Equal([1L, 3], tr.Strides);
    }

    [Theory]
    [InlineData("float16_to_float32")]
    [InlineData("bfloat16_to_float32")]
    public void FromBytesAndToBytesCarryHalfPrecisionBitsUnchanged(string name)
    {
        using var scope = DisposeScope.Enter();
        var input = Reference.Case(name).Input("x");
        var bytes = input.BitsAsBytes();
        var t = Tensor.FromBytes(bytes, input.TorchDType, input.Shape);
        Assert.Equal(input.TorchDType, t.DType);
        Assert.Equal(bytes, t.ToBytes());
        TensorAssert.Exact(t, input.Data, input.Shape);
    }

    [Fact]
    public void ToBytesOfBFloat16IsTorchsBitPattern()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("to_bfloat16");
        var expected = c.Output("out");
        Assert.Equal(expected.BitsAsBytes(), c.In("x").To(DType.BFloat16).ToBytes());
    }

    [Fact]
    public void ItemReadsOneElementOfAnyDType()
    {
        using var scope = DisposeScope.Enter();
        Assert.Equal(2.5f, Tensors.Scalar(2.5).ItemFloat());
        Assert.Equal(-7.0, Tensors.Full([1], -7, DType.Int64).Item());
        Assert.Equal(1L << 40, Tensor.From(new[] { 1L << 40 }).ItemInt64());
        Assert.Equal(1.0, Tensors.Ones([1, 1], DType.Bool).Item());
        Assert.Equal(0.0, Tensors.Zeros([], DType.Bool).Item());
        Assert.Equal(0.0999755859375, Tensors.Full([], 0.1, DType.Float16).Item());
        Assert.Equal(0.10009765625, Tensors.Full([], 0.1, DType.BFloat16).Item());
        Assert.Equal(255, Tensors.Full([1], 255, DType.UInt8).ItemInt64());
        Assert.Equal(3, Tensors.Full([], 3.9, DType.Float32).To(DType.Int32).ItemInt64());
    }

    [Fact]
    public void DTypeHelpersDescribeEveryType()
    {
        Assert.Equal(DType.Float32, DTypeExtensions.Of<float>());
        Assert.Equal(DType.Float16, DTypeExtensions.Of<Half>());
        Assert.Equal(DType.Bool, DTypeExtensions.Of<bool>());
        Assert.Throws<NotSupportedException>(() => DTypeExtensions.Of<decimal>());
        Assert.True(DType.BFloat16.IsFloatingPoint());
        Assert.False(DType.Int64.IsFloatingPoint());
        Assert.Equal(2, DType.BFloat16.ElementSize());
        Assert.Equal(DType.BFloat16, DTypeExtensions.Parse("bf16"));
        Assert.Equal(DType.Float16, DTypeExtensions.Parse("fp16"));
        Assert.Throws<ArgumentException>(() => DTypeExtensions.Parse("complex"));
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;
using Xunit.Sdk;

namespace LatentDiffusion.Torch.Tests;

/// <summary>The helpers the op tests rely on: the reference file and the comparisons.</summary>
public class TestUtilTests
{
    [Fact]
    public void TheReferenceFileIsWellFormed()
    {
        Assert.StartsWith("1.13", Reference.TorchVersion);
        var names = Reference.CaseNames.ToArray();
        Assert.True(names.Length > 100, $"only {names.Length} cases");
        foreach (var name in names)
        {
            var c = Reference.Case(name);
            var outputs = c.OutputNames.ToArray();
            Assert.NotEmpty(outputs);
            // every output parses, and its shape holds exactly its values
            foreach (var o in outputs) Assert.Equal(c.Output(o).Shape.Aggregate(1L, (a, b) => a * b), c.Output(o).Data.Length);
        }
        Assert.Throws<KeyNotFoundException>(() => Reference.Case("no such case"));
        Assert.Throws<KeyNotFoundException>(() => Reference.Case("linear").Output("no such output"));
    }

    [Fact]
    public void AssertCloseAcceptsValuesWithinTolerance()
    {
        using var scope = DisposeScope.Enter();
        var t = TestUtil.F32([1, 2, float.NaN, float.NegativeInfinity], 2, 2);
        TensorAssert.Close(t, [1.000001, 2, double.NaN, double.NegativeInfinity], [2, 2], 1e-5, 0);
        TensorAssert.Close(t, new[] { 1f, 2.00001f, float.NaN, float.NegativeInfinity }, [2, 2], 0, 1e-5);
    }

    [Fact]
    public void AssertCloseNamesTheWorstElementAndWhereItIs()
    {
        using var scope = DisposeScope.Enter();
        var t = TestUtil.F32([1, 2, 3, 4, 5, 6], 2, 3);
        var e = Assert.Throws<XunitException>(() => TensorAssert.Close(t, [1, 2.1, 3, 4, 5, 7], [2, 3], 1e-5, 1e-5));
        Assert.Contains("2 of 6 elements", e.Message);
        Assert.Contains("max abs error 1;", e.Message);
        Assert.Contains("[1, 2] (flat 5)", e.Message);
        Assert.Contains("actual 6, expected 7", e.Message);
        // shape, NaN and infinities are checked too
        Assert.Throws<XunitException>(() => TensorAssert.Close(t, [1, 2, 3, 4, 5, 6], [3, 2]));
        Assert.Throws<XunitException>(() => TensorAssert.Close(t, [1, 2, 3, 4, 5, double.NaN], [2, 3]));
        Assert.Throws<XunitException>(() => TensorAssert.Close(t, [1, 2, 3, 4, 5, double.PositiveInfinity], [2, 3]));
        Assert.Throws<XunitException>(() => TensorAssert.Close(TestUtil.F32([float.NaN]), [0], [1], 1, 1));
    }

    [Fact]
    public void AssertExactRejectsTheSmallestDifference()
    {
        using var scope = DisposeScope.Enter();
        var t = TestUtil.F32([0.1f, 0.2f]);
        TensorAssert.Exact(t, [0.1f, 0.2f], [2]);
        var e = Assert.Throws<XunitException>(() => TensorAssert.Exact(t, [0.1f, MathF.BitIncrement(0.2f)], [2]));
        Assert.Contains("1 of 2 elements differ", e.Message);
    }

    [Fact]
    public void AssertOutChecksTheDType()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("arange_int");
        c.AssertExact("out", Tensors.Arange(7));
        Assert.ThrowsAny<Exception>(() => c.AssertExact("out", Tensors.Arange(0, 7, 1, DType.Float32)));
        Assert.ThrowsAny<Exception>(() => c.AssertOut("out", Tensors.Arange(0, 7, 1, DType.Int32)));
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Shape, view and indexing operations against PyTorch. Their results are copies of input
/// elements, so they must agree exactly.</summary>
public class OpsShapeTests
{
    [Fact]
    public void ReshapeAndViewWithInferredDimension()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("reshape");
        c.AssertExact("out", c.In("x").Reshape(c.Longs("shape")));
        c = Reference.Case("view");
        var x = c.In("x");
        var v = x.View(c.Longs("shape"));
        c.AssertExact("out", v);
        // a view shares storage with its base
        x.Fill_(1);
        Assert.Equal(24.0, v.Sum().Item());
    }

    [Fact]
    public void SizeCountsNegativeDimsFromTheEndAndRefusesOthers()
    {
        using var x = Tensors.Zeros([2, 3, 5]);
        Assert.Equal([2L, 3, 5], new[] { x.Size(0), x.Size(1), x.Size(2) });
        Assert.Equal([5L, 3, 2], new[] { x.Size(-1), x.Size(-2), x.Size(-3) });
        Assert.Contains("out of range for a 3-d tensor", Assert.Throws<ArgumentOutOfRangeException>(() => x.Size(3)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => x.Size(-4));
        using var scalar = Tensors.Zeros([]);
        Assert.Throws<ArgumentOutOfRangeException>(() => scalar.Size(0));
    }

    [Fact]
    public void PermuteTransposeAndT()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("permute");
        c.AssertExact("out", c.In("x").Permute(c.Longs("dims")));
        c = Reference.Case("transpose");
        c.AssertExact("out", c.In("x").Transpose(c.Long("dim0"), c.Long("dim1")));
        var m = TestUtil.F32([1, 2, 3, 4, 5, 6], 2, 3).T();
        TensorAssert.Exact(m, [1, 4, 2, 5, 3, 6], [3, 2]);
    }

    [Theory]
    [InlineData("flatten_all")]
    [InlineData("flatten_1")]
    public void Flatten(string name)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case(name);
        c.AssertExact("out", c.In("x").Flatten(c.Long("start"), c.Long("end")));
    }

    [Fact]
    public void SqueezeAndUnsqueeze()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("squeeze_all");
        c.AssertExact("out", c.In("x").Squeeze());
        c = Reference.Case("squeeze_dim");
        c.AssertExact("out", c.In("x").Squeeze(c.Long("dim")));
        // squeezing a dimension that is not 1 leaves the tensor as it is, like torch
        Assert.Equal([1L, 3, 1, 2], c.In("x").Squeeze(1).Shape);
        c = Reference.Case("unsqueeze");
        c.AssertExact("out", c.In("x").Unsqueeze(c.Long("dim")));
    }

    [Fact]
    public void ExpandRepeatAndExpandAs()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("expand");
        var e = c.In("x").Expand(c.Longs("shape"));
        c.AssertExact("out", e);
        Assert.Equal(0, e.Strides[0]); // expand makes a view, not a copy
        c.AssertExact("out", c.In("x").ExpandAs(Tensors.Zeros([2, 3, 4])));
        c = Reference.Case("repeat");
        c.AssertExact("out", c.In("x").Repeat(c.Longs("repeats")));
    }

    [Fact]
    public void CatAndStack()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("cat_dim0");
        c.AssertExact("out", Tensor.Cat([c.In("a"), c.In("b"), c.In("c")], c.Long("dim")));
        c = Reference.Case("cat_dim1");
        c.AssertExact("out", Tensor.Cat([c.In("a"), c.In("b")], c.Long("dim")));
        c = Reference.Case("stack_dim0");
        c.AssertExact("out", Tensor.Stack([c.In("a"), c.In("b")], c.Long("dim")));
        c = Reference.Case("stack_dim2");
        c.AssertExact("out", Tensor.Stack([c.In("a"), c.In("b")], c.Long("dim")));
    }

    [Fact]
    public void ChunkAndSplitBySizeAndSizes()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("chunk_3");
        AssertParts(c, c.In("x").Chunk(c.Long("chunks"), c.Long("dim")));
        c = Reference.Case("split_size_3");
        AssertParts(c, c.In("x").Split(c.Long("size"), c.Long("dim")));
        c = Reference.Case("split_sizes");
        AssertParts(c, c.In("x").Split(c.Longs("sizes"), c.Long("dim")));
        // torch.chunk may return fewer chunks than asked for
        Assert.Equal(3, Tensors.Zeros([6]).Chunk(4).Length);
    }

    private static void AssertParts(RefCase c, Tensor[] parts)
    {
        var names = c.OutputNames.ToArray();
        Assert.Equal(names.Length, parts.Length);
        for (int i = 0; i < parts.Length; i++) c.AssertExact($"out{i}", parts[i]);
    }

    [Fact]
    public void NarrowSliceAndSelect()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("narrow");
        c.AssertExact("out", c.In("x").Narrow(c.Long("dim"), c.Long("start"), c.Long("length")));
        foreach (var name in new[] { "slice_step", "slice_negative" })
        {
            c = Reference.Case(name);
            c.AssertExact("out", c.In("x").Slice(c.Long("dim"), c.Long("start"), c.Long("end"), c.Long("step")));
        }
        foreach (var name in new[] { "select", "select_negative" })
        {
            c = Reference.Case(name);
            c.AssertExact("out", c.In("x").Select(c.Long("dim"), c.Long("index")));
        }
        c = Reference.Case("select");
        // the indexer selects along the first dimension
        TensorAssert.Exact(c.In("x")[1], Enumerable.Range(12, 12).Select(i => (double)i).ToArray(), [3, 4]);
    }

    [Fact]
    public void IndexSelectGatherAndIndexPut()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("index_select");
        c.AssertExact("out", c.In("x").IndexSelect(c.Long("dim"), c.In("index")));
        c = Reference.Case("gather");
        c.AssertExact("out", c.In("x").Gather(c.Long("dim"), c.In("index")));
        c = Reference.Case("index_put");
        var x = c.In("x");
        c.AssertExact("out", x.IndexPut(c.In("index"), c.In("values")));
        Assert.Equal(0.0, x.Sum().Item()); // IndexPut returns a copy
    }

    [Fact]
    public void MaskedFill()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("masked_fill");
        c.AssertExact("out", c.In("x").MaskedFill(c.In("mask"), c.Double("value")));
        c = Reference.Case("masked_fill_broadcast");
        c.AssertExact("out", c.In("x").MaskedFill(c.In("mask"), double.NegativeInfinity));
    }

    [Theory]
    [InlineData("triu", true)]
    [InlineData("triu_1", true)]
    [InlineData("tril", false)]
    [InlineData("tril_m1", false)]
    public void TriuAndTril(string name, bool upper)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case(name);
        var x = c.In("x");
        c.AssertExact("out", upper ? x.Triu(c.Long("diagonal")) : x.Tril(c.Long("diagonal")));
    }

    [Fact]
    public void WhereWithAndWithoutBroadcasting()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("where");
        c.AssertExact("out", Tensor.Where(c.In("cond"), c.In("a"), c.In("b")));
        c = Reference.Case("where_broadcast");
        c.AssertExact("out", Tensor.Where(c.In("cond"), c.In("a"), c.In("b")));
    }

    [Fact]
    public void FlipAndRoll()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("flip");
        c.AssertExact("out", c.In("x").Flip(c.Longs("dims")));
        foreach (var name in new[] { "roll", "roll_negative" })
        {
            c = Reference.Case(name);
            c.AssertExact("out", c.In("x").Roll(c.Long("shift"), c.Long("dim")));
        }
    }

    [Fact]
    public void ContiguousCopiesAStridedView()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensors.Arange(0, 6, 1, DType.Float32).Reshape(2, 3).T();
        Assert.False(x.IsContiguous);
        var c = x.Contiguous();
        Assert.True(c.IsContiguous);
        Assert.Equal([2L, 1], c.Strides);
        TensorAssert.Exact(c, [0, 3, 1, 4, 2, 5], [3, 2]);
        // View needs compatible strides; Reshape copies when it must
        TensorAssert.Exact(x.Reshape(6), [0, 3, 1, 4, 2, 5], [6]);
        Assert.Equal(6, x.Size(0) * x.Size(-1));
    }

    [Fact]
    public void NonzeroListsIndices()
    {
        using var scope = DisposeScope.Enter();
        var x = TestUtil.F32([0, 1, 0, 2, 0, 3], 2, 3);
        TensorAssert.Exact(x.Nonzero(), [0, 1, 1, 0, 1, 2], [3, 2]);
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Random numbers: with a seeded <see cref="Generator"/> every draw is bit-for-bit what PyTorch's
/// torch.Generator().manual_seed(seed) gives on the CPU.
/// </summary>
public class RandomTests
{
    [Theory]
    [InlineData("randn_seed0_3x5", new long[] { 3, 5 })]
    [InlineData("randn_seed42_2x3x7", new long[] { 2, 3, 7 })]
    public void RandnIsBitExact(string name, long[] shape)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case(name);
        using var g = new Generator((ulong)c.Long("seed"));
        c.AssertExact("out", Tensors.Randn(shape, g));
    }

    [Fact]
    public void RandnFloat64IsBitExact()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("randn_seed1234_float64");
        using var g = new Generator(1234);
        c.AssertExact("out", Tensors.Randn([20], g, DType.Float64));
    }

    [Fact]
    public void RandIsBitExact()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(7);
        Reference.Case("rand_seed7_17").AssertExact("out", Tensors.Rand([17], g));
        g.ManualSeed(7);
        Reference.Case("rand_seed7_float64_2x3").AssertExact("out", Tensors.Rand([2, 3], g, DType.Float64));
    }

    [Fact]
    public void RandintIsBitExact()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("randint_seed3_0_10");
        using var g = new Generator(3);
        c.AssertExact("out", Tensors.Randint(c.Long("low"), c.Long("high"), [20], g));
        c = Reference.Case("randint_seed3_m5_5_int32");
        g.ManualSeed(3);
        c.AssertExact("out", Tensors.Randint(c.Long("low"), c.Long("high"), [3, 4], g, DType.Int32));
    }

    [Fact]
    public void LikeVariantsDrawWithTheTemplatesShapeAndDType()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(0);
        var template = Tensors.Zeros([3, 5]);
        Reference.Case("randn_seed0_3x5").AssertExact("out", Tensors.RandnLike(template, g));
        g.ManualSeed(7);
        Reference.Case("rand_seed7_float64_2x3").AssertExact("out", Tensors.RandLike(Tensors.Zeros([2, 3], DType.Float64), g));
        g.ManualSeed(3);
        var c = Reference.Case("randint_seed3_m5_5_int32");
        c.AssertExact("out", Tensors.RandintLike(Tensors.Zeros([3, 4], DType.Int32), c.Long("low"), c.Long("high"), g));
    }

    [Theory]
    [InlineData("randperm_seed5_10")]
    [InlineData("randperm_seed5_50")]
    public void RandpermIsBitExact(string name)
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case(name);
        using var g = new Generator((ulong)c.Long("seed"));
        var p = Tensors.Randperm(c.Long("n"), g);
        c.AssertExact("out", p);
        var sorted = p.ToArray<long>().Order().ToArray();
        Assert.Equal(Enumerable.Range(0, (int)c.Long("n")).Select(i => (long)i), sorted);
    }

    [Fact]
    public void NormalAndUniformInPlaceAreBitExact()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("normal_seed9");
        using var g = new Generator(9);
        var n = Tensors.Empty([3, 4]);
        Assert.Same(n, n.Normal_(c.Double("mean"), c.Double("std"), g));
        c.AssertExact("out", n);
        c = Reference.Case("uniform_seed9");
        g.ManualSeed(9);
        c.AssertExact("out", Tensors.Empty([3, 4]).Uniform_(c.Double("low"), c.Double("high"), g));
    }

    [Fact]
    public void MultinomialIsBitExact()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("multinomial_seed13");
        using var g = new Generator(13);
        c.AssertExact("out", Tensors.Multinomial(c.In("probs"), c.Long("n"), replacement: true, generator: g));
    }

    [Fact]
    public void ConsecutiveDrawsAdvanceTheGeneratorLikeTorch()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("sequence_seed11");
        using var g = new Generator(11);
        c.AssertExact("randn", Tensors.Randn([2, 3], g));
        c.AssertExact("rand", Tensors.Rand([4], g));
        c.AssertExact("randint", Tensors.Randint(0, 100, [5], g));
    }

    [Fact]
    public void ManualSeedRestartsTheSequence()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(5);
        var first = Tensors.Randn([8], g);
        var second = Tensors.Randn([8], g);
        Assert.False(first.Equal(second));
        g.ManualSeed(5);
        Assert.True(first.Equal(Tensors.Randn([8], g)));
    }

    [Fact]
    public void GetStateAndSetStateReplayTheSameNumbers()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(77);
        _ = Tensors.Randn([3], g);
        var state = g.GetState();
        Assert.Equal(DType.UInt8, state.DType);
        var expected = Tensors.Randn([2, 9], g);
        using var other = new Generator(1);
        other.SetState(state);
        Assert.True(expected.Equal(Tensors.Randn([2, 9], other)));
    }

    [Fact]
    public void DifferentSeedsGiveDifferentNumbers()
    {
        using var scope = DisposeScope.Enter();
        using var a = new Generator(1);
        using var b = new Generator(2);
        Assert.False(Tensors.Randn([16], a).Equal(Tensors.Randn([16], b)));
    }

    [Fact]
    public void RandAndRandintStayInRange()
    {
        using var scope = DisposeScope.Enter();
        using var g = new Generator(3);
        var u = TensorAssert.Values(Tensors.Rand([1000], g));
        Assert.All(u, v => Assert.InRange(v, 0.0, 0.99999999));
        Assert.InRange(u.Average(), 0.45, 0.55);
        var r = Tensors.Randint(-3, 4, [1000], g).ToArray<long>();
        Assert.All(r, v => Assert.InRange(v, -3L, 3L));
        Assert.Equal(7, r.Distinct().Count());
        var n = TensorAssert.Values(Tensors.Randn([4000], g));
        Assert.InRange(n.Average(), -0.06, 0.06);
        var sd = Math.Sqrt(n.Select(v => v * v).Average());
        Assert.InRange(sd, 0.95, 1.05);
    }
}

/// <summary>libtorch's global generator is process-wide, so this runs alone.</summary>
[Collection(ProcessWideStateCollection.Name)]
public class RandomGlobalSeedTests
{
    [Fact]
    public void ManualSeedSeedsTheGlobalGeneratorLikeTorchManualSeed()
    {
        using var scope = DisposeScope.Enter();
        var c = Reference.Case("global_seed21");
        TorchRuntime.ManualSeed((ulong)c.Long("seed"));
        c.AssertExact("out", Tensors.Randn([6]));
        TorchRuntime.ManualSeed((ulong)c.Long("seed"));
        c.AssertExact("out", Tensors.Randn([6]));
    }
}

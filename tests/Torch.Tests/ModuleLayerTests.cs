using LatentDiffusion.Torch.NN;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

public class ModuleLayerTests
{
    [Fact]
    public void LayersComputeWhatTheFunctionalCallsCompute()
    {
        using var scope = DisposeScope.Enter();
        var g = new Generator(11);
        var x2 = Tensors.Randn([2, 6], g);
        var x4 = Tensors.Randn([2, 4, 5, 7], g);

        using var linear = new Linear(6, 3, generator: g);
        Assert.True(linear.Forward(x2).Equal(Functional.Linear(x2, linear.Weight, linear.Bias)));
        using var noBias = new Linear(6, 3, bias: false, generator: g);
        Assert.Null(noBias.Bias);
        Assert.True(noBias.Forward(x2).Equal(x2.MatMul(noBias.Weight.T())));

        using var conv = new Conv2d(4, 6, (3, 1), (2, 1), (1, 0), (1, 1), groups: 2, generator: g);
        Assert.Equal([6L, 2, 3, 1], conv.Weight.Shape);
        Assert.True(conv.Forward(x4).Equal(Functional.Conv2d(x4, conv.Weight, conv.Bias, (2, 1), (1, 0), (1, 1), 2)));

        using var deconv = new ConvTranspose2d(4, 2, 3, stride: 2, padding: 1, outputPadding: 1, generator: g);
        Assert.Equal([4L, 2, 3, 3], deconv.Weight.Shape);
        var up = deconv.Forward(x4);
        Assert.Equal([2L, 2, 10, 14], up.Shape);
        Assert.True(up.Equal(Functional.ConvTranspose2d(x4, deconv.Weight, deconv.Bias, 2, 1, 1)));

        using var groupNorm = new GroupNorm(2, 4, eps: 1e-6);
        Init.Normal_(groupNorm.Weight!, generator: g);
        Init.Normal_(groupNorm.Bias!, generator: g);
        Assert.True(groupNorm.Forward(x4).Equal(Functional.GroupNorm(x4, 2, groupNorm.Weight, groupNorm.Bias, 1e-6)));
        Assert.Null(new GroupNorm(2, 4, affine: false).Weight);

        using var layerNorm = new LayerNorm(7);
        Init.Normal_(layerNorm.Weight!, generator: g);
        Assert.True(layerNorm.Forward(x4).Equal(Functional.LayerNorm(x4, [7], layerNorm.Weight, layerNorm.Bias)));
        Assert.Empty(new LayerNorm([5, 7], elementwiseAffine: false).Parameters());

        using var embedding = new Embedding(10, 3, g);
        var ids = Tensor.From([1L, 9, 1, 0], 2, 2);
        var e = embedding.Forward(ids);
        Assert.Equal([2L, 2, 3], e.Shape);
        Assert.True(e.Select(0, 0).Select(0, 0).Equal(embedding.Weight.Select(0, 1)));

        Assert.True(new SiLU().Forward(x2).Equal(x2.Silu()));
        Assert.True(new ReLU().Forward(x2).Equal(x2.Relu()));
        Assert.True(new Sigmoid().Forward(x2).Equal(x2.Sigmoid()));
        Assert.True(new Tanh().Forward(x2).Equal(x2.Tanh()));
        Assert.True(new GELU().Forward(x2).Equal(Functional.Gelu(x2)));
        Assert.True(new GELU("tanh").Forward(x2).Equal(Functional.Gelu(x2, tanhApproximation: true)));
        Assert.False(new GELU("tanh").Forward(x2).Equal(Functional.Gelu(x2)));
        Assert.True(new QuickGELU().Forward(x2).Equal(x2 * (x2 * 1.702).Sigmoid()));
        var identity = new Identity().Forward(x2);
        Assert.NotSame(x2, identity);
        Assert.True(identity.Equal(x2));
        Assert.Throws<ArgumentException>(() => new GELU("fast"));
    }

    [Fact]
    public void SequentialChainsItsModulesAndFreesIntermediates()
    {
        using var scope = DisposeScope.Enter();
        using var seq = new Sequential(new Linear(4, 8, generator: new Generator(1)), new SiLU(), new Linear(8, 2, generator: new Generator(2)));
        var x = Tensors.Randn([3, 4], new Generator(3));
        var expected = ((Linear)seq[2]).Forward(((Linear)seq[0]).Forward(x).Silu());
        var before = scope.Count;
        var y = seq.Forward(x);
        Assert.Equal(before + 1, scope.Count);
        Assert.True(y.Equal(expected));
        Assert.Equal(3, seq.Count);
        var empty = new Sequential().Forward(x);
        Assert.NotSame(x, empty);
        Assert.True(empty.Equal(x));
    }

    [Fact]
    public void DefaultInitialisationStaysWithinPyTorchsBounds()
    {
        using var g = new Generator(12);
        using var linear = new Linear(100, 300, generator: g);
        AssertUniformWithin(linear.Weight, 1 / Math.Sqrt(100));
        AssertUniformWithin(linear.Bias!, 1 / Math.Sqrt(100));

        using var conv = new Conv2d(8, 200, 3, groups: 2, generator: g);
        AssertUniformWithin(conv.Weight, 1 / Math.Sqrt(4 * 3 * 3));
        AssertUniformWithin(conv.Bias!, 1 / Math.Sqrt(4 * 3 * 3));

        using var deconv = new ConvTranspose2d(8, 16, 4, generator: g);
        AssertUniformWithin(deconv.Weight, 1 / Math.Sqrt(16 * 4 * 4));

        using var embedding = new Embedding(1000, 16, g);
        var values = embedding.Weight.ToArray<float>();
        var mean = values.Average();
        var std = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());
        Assert.InRange(mean, -0.05, 0.05);
        Assert.InRange(std, 0.95, 1.05);

        using var norm = new GroupNorm(4, 8);
        Assert.All(norm.Weight!.ToArray<float>(), v => Assert.Equal(1f, v));
        Assert.All(norm.Bias!.ToArray<float>(), v => Assert.Equal(0f, v));
    }

    private static void AssertUniformWithin(Tensor t, double bound)
    {
        var values = t.ToArray<float>();
        Assert.All(values, v => Assert.True(Math.Abs(v) <= bound, $"{v} outside ±{bound}"));
        // U(-b, b) fills the range: the extremes of a few hundred draws come close to it
        Assert.True(values.Length >= 200);
        Assert.True(values.Max() > 0.8 * bound && values.Min() < -0.8 * bound);
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("conv2d")]
    [InlineData("conv_transpose2d")]
    [InlineData("embedding")]
    public void SeededInitialisationEqualsPyTorchs(string layer)
    {
        var reference = OptimReference.Get("init").GetProperty(layer);
        using var g = new Generator((ulong)reference.GetProperty("seed").GetInt64());
        using Module m = layer switch
        {
            "linear" => new Linear(5, 3, generator: g),
            "conv2d" => new Conv2d(4, 6, 3, groups: 2, generator: g),
            "conv_transpose2d" => new ConvTranspose2d(4, 2, 3, generator: g),
            _ => new Embedding(6, 3, g),
        };
        var state = m.StateDict();
        var expected = reference.GetProperty("values");
        Assert.Equal(expected.EnumerateObject().Select(p => p.Name), state.Keys);
        foreach (var p in expected.EnumerateObject())
            Assert.Equal(OptimReference.Floats(p.Value), state[p.Name].ToArray<float>());
    }

    [Fact]
    public void SkippedInitialisationDrawsNoRandomNumbers()
    {
        using var g = new Generator(21);
        using (Init.SkipInitialization())
        {
            Assert.True(Init.IsSkipping);
            using var layer = new Linear(64, 64, generator: g);
        }
        Assert.False(Init.IsSkipping);
        using var fresh = new Generator(21);
        using var a = Tensors.Rand([8], g);
        using var b = Tensors.Rand([8], fresh);
        Assert.True(a.Equal(b));
    }
}

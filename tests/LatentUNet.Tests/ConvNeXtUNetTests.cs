using LatentDiffusion.LatentUNet.ConvNeXt;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Config;
using LatentDiffusion.Torch.NN;
using LatentDiffusion.Torch.SafeTensors;
using Xunit;

namespace LatentDiffusion.LatentUNet.Tests;

public class ConvNeXtUNetTests
{
    private static readonly ConvNeXtUNetConfig Tiny = new() { Dim = 4, DimMults = [1, 2], Channels = 1, SampleSize = 8 };

    // Counts from the write-up's PyTorch classes (tests/fixtures/latentunet/make_convnext_reference.py).
    [Theory]
    [InlineData(64, new[] { 1, 2, 4, 8 }, 3, false, 62_699_395L)]
    [InlineData(64, new[] { 1, 2, 4, 8 }, 3, true, 63_226_567L)]
    [InlineData(32, new[] { 1, 2, 4 }, 1, false, 4_147_905L)]
    [InlineData(32, new[] { 1, 2, 4 }, 1, true, 4_181_348L)]
    public void ParameterCountMatchesThePyTorchModel(int dim, int[] mults, int channels, bool attention, long expected)
    {
        using var skip = Init.SkipInitialization();
        using var model = new ConvNeXtUNet(new ConvNeXtUNetConfig { Dim = dim, DimMults = mults, Channels = channels, AttentionGates = attention });
        Assert.Equal(expected, model.ParameterCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OutputMatchesThePyTorchModel(bool attention)
    {
        var prefix = attention ? "attention." : "plain.";
        var all = SafeTensorsFile.LoadFile(SharedData.Fixture("latentunet/convnext_reference.safetensors"));
        try
        {
            using var model = new ConvNeXtUNet(Tiny with { AttentionGates = attention });
            var weights = all.Where(kv => kv.Key.StartsWith(prefix + "weights.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[(prefix.Length + "weights.".Length)..], kv => kv.Value);
            model.LoadStateDict(weights); // strict: the names are exactly the PyTorch module's
            Assert.Equal(weights.Keys.Order(StringComparer.Ordinal), model.StateDict().Keys.Order(StringComparer.Ordinal));
            using var scope = DisposeScope.Enter();
            using var noGrad = Autograd.NoGrad();
            var output = model.Forward(all["input"], all["timesteps"]);
            var expected = all[prefix + "output"];
            Assert.Equal(expected.Shape, output.Shape);
            var maxError = (output - expected).Abs().Max().Item();
            Assert.True(maxError < 1e-4, $"max |C# − PyTorch| = {maxError}");
        }
        finally
        {
            foreach (var t in all.Values) t.Dispose();
        }
    }

    [Theory]
    [InlineData(8, 8)]
    [InlineData(16, 16)]
    [InlineData(32, 24)]
    [InlineData(4, 12)]
    public void OutputHasTheInputShapeAtSeveralResolutions(int height, int width)
    {
        using var g = new Generator(1);
        using var model = new ConvNeXtUNet(Tiny with { DimMults = [1, 2, 2] }, g);
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = Tensors.Randn([3, 1, height, width], g);
        var output = model.Forward(x, Tensors.Scalar(10, DType.Int64));
        Assert.Equal([3L, 1, height, width], output.Shape);
    }

    [Fact]
    public void RgbWithAttentionKeepsTheShape()
    {
        using var g = new Generator(2);
        using var model = new ConvNeXtUNet(new ConvNeXtUNetConfig { Dim = 8, DimMults = [1, 2, 4], Channels = 3, AttentionGates = true }, g);
        using var scope = DisposeScope.Enter();
        using var noGrad = Autograd.NoGrad();
        var x = Tensors.Randn([2, 3, 16, 16], g);
        var output = model.Forward(x, Tensor.From(new long[] { 0, 999 }));
        Assert.Equal([2L, 3, 16, 16], output.Shape);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GradientsReachEveryParameter(bool attention)
    {
        using var g = new Generator(3);
        using var model = new ConvNeXtUNet(Tiny with { AttentionGates = attention }, g);
        using (var scope = DisposeScope.Enter())
        {
            var x = Tensors.Randn([2, 1, 8, 8], g);
            var loss = model.Forward(x, Tensor.From(new long[] { 5, 500 })).Square().Mean();
            loss.Backward();
        }
        foreach (var (name, p) in model.NamedParameters())
        {
            using var grad = p.Grad;
            Assert.True(grad is not null, $"{name} has no gradient");
            Assert.True(grad!.Abs().Sum().Item() > 0, $"{name} has an all-zero gradient");
        }
    }

    [Fact]
    public void SaveAndLoadRoundTrip()
    {
        var dir = Path.Combine(Path.GetTempPath(), "convnext-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var g = new Generator(4);
            using var model = new ConvNeXtUNet(Tiny with { AttentionGates = true }, g);
            model.Save(dir);
            Assert.Equal("ConvNeXtUNet", ConfigJson.ClassName(Path.Combine(dir, "config.json")));
            using var loaded = ConvNeXtUNet.FromPretrained(dir);
            Assert.Equal(model.Config.DimMults, loaded.Config.DimMults);
            Assert.True(loaded.Config.AttentionGates);
            using var scope = DisposeScope.Enter();
            using var noGrad = Autograd.NoGrad();
            var x = Tensors.Randn([1, 1, 8, 8], g);
            var t = Tensors.Scalar(7, DType.Int64);
            Assert.True(model.Forward(x, t).Equal(loaded.Forward(x, t)));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void InvalidInputsAndConfigsAreNamed()
    {
        using var model = new ConvNeXtUNet(Tiny with { DimMults = [1, 2, 4] });
        using var scope = DisposeScope.Enter();
        var e = Assert.Throws<ArgumentException>(() => model.Forward(Tensors.Zeros([1, 1, 6, 6]), Tensors.Scalar(1)));
        Assert.Contains("multiples of 4", e.Message);
        Assert.Contains("'dim'", Assert.Throws<ConfigException>(() => new ConvNeXtUNetConfig { Dim = 5 }.Validate()).Message);
        Assert.Contains("'sample_size'", Assert.Throws<ConfigException>(() => (Tiny with { SampleSize = 30, DimMults = [1, 2, 4] }).Validate()).Message);
        var unknown = Assert.Throws<ConfigException>(() => ConfigJson.Parse<ConvNeXtUNetConfig>("{\"dim\": 8, \"dim_mult\": [1]}", "x.json"));
        Assert.Contains("'dim_mult'", unknown.Message);
    }
}

using LatentDiffusion.Pipeline.Noise;
using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Pipeline.Tests;

public sealed class NoiseSourceTests
{
    [Fact]
    public void GeneratorNoiseDrawsWhatTorchRandnDrawsFromTheSameSeed()
    {
        using var scope = DisposeScope.Enter();
        using var noise = new GeneratorNoise(1234);
        using var generator = new Generator(1234);
        // draws follow one stream: the second draw continues the first
        Assert.True(noise.Next([1, 4, 8, 8], DType.Float32, Device.CPU).Equal(Tensors.Randn([1, 4, 8, 8], generator)));
        Assert.True(noise.Next([2, 3], DType.Float32, Device.CPU).Equal(Tensors.Randn([2, 3], generator)));
        Assert.Equal(2, noise.Drawn);

        // torch.randn(2, 3, generator=torch.Generator().manual_seed(1234))[0] in PyTorch 1.13
        using var fresh = new GeneratorNoise(1234);
        var first = fresh.Next([2, 3], DType.Float32, Device.CPU).ToArray<float>();
        Assert.Equal(new[] { 0.0461f, 0.4024f, -1.0115f }, first[..3].Select(v => MathF.Round(v, 4)).ToArray());
    }

    [Fact]
    public void GeneratorNoiseGivesTheRequestedDtype()
    {
        using var scope = DisposeScope.Enter();
        using var noise = new GeneratorNoise(7);
        using var generator = new Generator(7);
        var half = noise.Next([3, 5], DType.Float16, Device.CPU);
        Assert.Equal(DType.Float16, half.DType);
        Assert.True(half.Equal(Tensors.Randn([3, 5], generator).To(DType.Float16)));
    }

    [Fact]
    public void QueueNoiseReturnsGivenTensorsInOrderAndChecksShapes()
    {
        using var scope = DisposeScope.Enter();
        var a = Tensors.Ones([2, 2]);
        var b = Tensors.Full([3], 2.0);
        var queue = new QueueNoise(a, b);
        var first = queue.Next([2, 2], DType.Float32, Device.CPU);
        Assert.True(first.Equal(a));
        first.Dispose();
        Assert.False(a.IsDisposed); // the queue hands out new handles; the caller's tensors stay alive
        var wrongShape = Assert.Throws<InvalidOperationException>(() => queue.Next([2, 2], DType.Float32, Device.CPU));
        Assert.Contains("[3]", wrongShape.Message);
        Assert.Equal(0, queue.Remaining);
        var exhausted = Assert.Throws<InvalidOperationException>(() => queue.Next([1], DType.Float32, Device.CPU));
        Assert.Contains("exhausted", exhausted.Message);

        var converting = new QueueNoise(Tensors.Ones([2]));
        Assert.Equal(DType.Float64, converting.Next([2], DType.Float64, Device.CPU).DType);
    }
}

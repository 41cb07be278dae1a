using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>Tensor.DataPointer: the element memory another runtime (ONNX Runtime) reads and writes in place.</summary>
public class DataPointerTests
{
    [Fact]
    public unsafe void PointsAtTheElementsAndWritesThroughItAreSeenByTheTensor()
    {
        using var t = Tensor.From([1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        var p = (float*)t.DataPointer;
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], new ReadOnlySpan<float>(p, 6).ToArray());
        p[4] = 50f;
        Assert.Equal([1f, 2f, 3f, 4f, 50f, 6f], t.ToArray<float>());
        using var view = t.Narrow(0, 1, 1);
        Assert.Equal((IntPtr)(p + 3), view.DataPointer);
    }

    [Fact]
    public void ANonContiguousTensorIsRefusedWithTheReason()
    {
        using var t = Tensor.From([1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        using var transposed = t.Transpose(0, 1);
        var e = Assert.Throws<TorchException>(() => transposed.DataPointer);
        Assert.Contains("not contiguous", e.Message);
    }
}

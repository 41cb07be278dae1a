using Xunit;

namespace LatentDiffusion.Torch.Tests;

public class SmokeTests
{
    [Fact]
    public void MatmulOfMismatchedShapesRaisesTorchExceptionNamingTheOperation()
    {
        using var a = Torch.Ones([2, 3]);
        using var b = Torch.Ones([4, 5]);
        var e = Assert.Throws<TorchException>(() => a.MatMul(b));
        Assert.Equal("matmul", e.Operation);
        Assert.Contains("2x3", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}

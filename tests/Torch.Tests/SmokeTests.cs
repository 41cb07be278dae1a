using Xunit;

namespace LatentDiffusion.Torch.Tests;

public class SmokeTests
{
    [Fact]
    public void MatmulOfMismatchedShapesRaisesTorchExceptionNamingTheOperation()
    {
        using var a = Tensors.Ones([2, 3]);
        using var b = Tensors.Ones([4, 5]);
        var e = Assert.Throws<TorchException>(() => a.MatMul(b));
        Assert.Equal("matmul", e.Operation);
        Assert.Contains("2x3", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}

public class AbiVersionTests
{
    [Fact]
    public void LoadedNativeLibraryHasTheManagedAbiVersion() =>
        Assert.Equal(TorchRuntime.ManagedAbiVersion, TorchRuntime.NativeAbiVersion);

    [Fact]
    public void ANativeLibraryOfAnotherAbiVersionIsRefusedWithAClearMessage()
    {
        var e = Assert.Throws<TorchException>(() => Native.LibTorch.CheckAbiVersion(TorchRuntime.ManagedAbiVersion + 1));
        Assert.Equal("load", e.Operation);
        Assert.Contains($"native library ABI version {TorchRuntime.ManagedAbiVersion + 1} does not match the managed binding's {TorchRuntime.ManagedAbiVersion}", e.Message);
        Assert.Contains("rebuild", e.Message);
        Native.LibTorch.CheckAbiVersion(TorchRuntime.ManagedAbiVersion);
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>What the fused norm kernels' tests share (FusedGroupNormTests, FusedLayerNormTests).</summary>
internal static class FusedNormTesting
{
    /// <summary>Runs <paramref name="action"/> with the fused kernels switched on or off, then restores the switch.</summary>
    public static void WithFused(bool on, Action action)
    {
        var was = FusedNorm.Enabled;
        FusedNorm.Enabled = on;
        try { action(); }
        finally { FusedNorm.Enabled = was; }
    }

    /// <summary><paramref name="norm"/> of <paramref name="x"/> in f32 and bf16 gives the same bits on 1 and 2 threads.</summary>
    public static void SameBitsOnOneAndTwoThreads(Tensor x, Func<Tensor, Tensor> norm)
    {
        using var inference = Autograd.InferenceMode();
        var threads = TorchRuntime.Threads;
        try
        {
            foreach (var dtype in new[] { DType.Float32, DType.BFloat16 })
            {
                using var scope = DisposeScope.Enter();
                var xd = x.To(dtype);
                TorchRuntime.Threads = 1;
                var one = norm(xd);
                TorchRuntime.Threads = 2;
                var two = norm(xd);
                Assert.Equal(0.0, TensorAssert.MaxAbsDifference(one, two));
            }
        }
        finally { TorchRuntime.Threads = threads; }
    }

    /// <summary>
    /// <paramref name="norm"/> with the fused kernels on and off: NaN in both exactly where the element lies in block
    /// <paramref name="poisoned"/> (of <paramref name="block"/> elements: the row or group holding inf or NaN), the other
    /// elements close to each other.
    /// </summary>
    public static void NaNOnlyInThePoisonedBlock(Func<Tensor> norm, int block, int poisoned, string what)
    {
        Tensor fused = null!, plain = null!;
        WithFused(true, () => fused = norm());
        WithFused(false, () => plain = norm());
        var f = TensorAssert.Values(fused);
        var p = TensorAssert.Values(plain);
        for (int i = 0; i < f.Length; i++)
        {
            Assert.Equal(double.IsNaN(p[i]), double.IsNaN(f[i]));
            Assert.Equal(i / block == poisoned, double.IsNaN(f[i]));
            if (!double.IsNaN(p[i])) Assert.True(Math.Abs(p[i] - f[i]) <= 1e-2 * (1 + Math.Abs(p[i])), $"{what} element {i}: {f[i]} vs {p[i]}");
        }
    }
}

using LatentDiffusion.Torch;
using Xunit;

namespace LatentDiffusion.Cli.Tests;

/// <summary><c>--dtype auto</c> (issue 19): bf16 only on CPUs that compute it natively, f16 on CUDA, f32 elsewhere.</summary>
public class AutoDTypeTests
{
    [Theory]
    [InlineData("fpu sse2 avx2 avx512f avx512_bf16 amx_tile", DType.BFloat16)] // Zen 4 / Cooper Lake style
    [InlineData("fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8", DType.BFloat16)] // AMX alone
    [InlineData("fpu sse2 avx2 avx512f avx512_vnni", DType.Float32)] // AVX-512 without bf16: emulated, slower
    [InlineData("fpu sse2 avx2 fma", DType.Float32)]
    [InlineData("", DType.Float32)] // no /proc/cpuinfo (not Linux)
    [InlineData("avx512bf16", DType.Float32)] // a flag is matched whole, not as a substring
    public void OnTheCpuAutoIsBf16OnlyWithNativeBf16(string flags, DType expected)
    {
        var set = new HashSet<string>(flags.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(expected, DeviceOptions.AutoDType(Device.CPU, set));
    }

    [Fact]
    public void OnCudaAutoIsF16WhateverTheCpu()
    {
        Assert.Equal(DType.Float16, DeviceOptions.AutoDType(Device.Parse("cuda"), new HashSet<string>()));
        Assert.Equal(DType.Float16, DeviceOptions.AutoDType(Device.Parse("cuda:1"), new HashSet<string> { "avx512_bf16" }));
    }

    [Fact]
    public void AutoParsesAndIsAcceptedByTheDeviceCheck()
    {
        Assert.Null(DeviceOptions.Check("--device", "cpu", "--dtype", "auto"));
        Assert.Null(DeviceOptions.Check("--device", "cpu", "--dtype", "AUTO"));
        Assert.True(DeviceOptions.ParseDType("auto", Device.CPU) is DType.Float32 or DType.BFloat16);
        Assert.Equal(DType.BFloat16, DeviceOptions.ParseDType("bf16", Device.CPU));
        Assert.Equal("--dtype must be f32, bf16, f16 or auto, got 'f8'", DeviceOptions.Check("--device", "cpu", "--dtype", "f8"));
    }
}

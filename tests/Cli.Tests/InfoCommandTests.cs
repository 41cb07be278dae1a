using System.Text.Json;

namespace LatentDiffusion.Cli.Tests;

public class InfoCommandTests
{
    [Fact]
    public void JsonIsOneObjectWithTheRuntimeFacts()
    {
        var r = CliRunner.Run("info", "--json");

        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Out); // the whole of stdout: nothing else is printed there
        var root = doc.RootElement;
        Assert.Equal(JsonValueKind.Object, root.ValueKind);
        foreach (var key in new[]
                 {
                     "version", "libtorch", "native_abi_version", "managed_abi_version", "devices", "cuda_device_count",
                     "threads", "blas", "reference_blas", "omp_wait_policy", "fused_attention", "fused_cpu_attention", "onednn_matmul", "distributed_backends", "dotnet", "os", "arch", "warnings",
                 })
        {
            Assert.True(root.TryGetProperty(key, out _), $"missing key {key}");
        }

        Assert.Equal(root.GetProperty("managed_abi_version").GetInt32(), root.GetProperty("native_abi_version").GetInt32());
        Assert.Matches(@"^\d+\.\d+", root.GetProperty("libtorch").GetString());
        var devices = root.GetProperty("devices").EnumerateArray().Select(d => d.GetString()).ToList();
        Assert.Equal("cpu", devices[0]);
        Assert.Equal(root.GetProperty("cuda_device_count").GetInt32(), devices.Count - 1);
        Assert.True(root.GetProperty("threads").GetInt32() >= 1);
        Assert.False(string.IsNullOrEmpty(root.GetProperty("blas").GetString()));
        Assert.StartsWith(".NET", root.GetProperty("dotnet").GetString());
        Assert.Equal(LatentDiffusion.Torch.TorchRuntime.FusedCpuAttentionActive, root.GetProperty("fused_cpu_attention").GetBoolean());
        Assert.Equal(LatentDiffusion.Torch.TorchRuntime.DirectOneDnnActive, root.GetProperty("onednn_matmul").GetBoolean());
        // Gloo is built in (libgloo-dev); NCCL only where libtorch has it and sees a GPU.
        var backends = root.GetProperty("distributed_backends").EnumerateArray().Select(b => b.GetString()).ToList();
        Assert.Equal("gloo", backends[0]);
        Assert.Equal(backends.Contains("nccl"), LatentDiffusion.Torch.Distributed.ProcessGroup.HasNccl);
        Assert.Equal(root.GetProperty("reference_blas").GetBoolean(), root.GetProperty("warnings").GetArrayLength() > 0);
    }

    [Fact]
    public void TableNamesEveryFact()
    {
        var r = CliRunner.Run("info");

        Assert.Equal(0, r.ExitCode);
        foreach (var label in new[] { "libtorch", "ABI", "devices", "threads", "BLAS", "OMP_WAIT_POLICY", "fused attention", "CPU attention kernel", "batch streams", ".NET", "OS" })
            Assert.Contains(label, r.Out);
        Assert.Contains("cpu", r.Out);
    }
}

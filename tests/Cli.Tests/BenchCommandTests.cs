using System.Text.Json;
using LatentDiffusion.Cli.Benchmarks;
using LatentDiffusion.Tests.Common;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Tests;

public class BenchCommandTests
{
    [Fact]
    public void OpsJsonGivesPositiveNumbersAndFreesEveryTensor()
    {
        // Settled: an earlier test's dropped tensors must not be finalized (and counted) in the middle.
        var live = LiveTensorCount.Settled();

        var r = CliRunner.Run("bench", "ops", "--json", "--repeat", "1");

        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Err}");
        Assert.Equal(live, LiveTensorCount.Settled());
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        foreach (var key in new[] { "op_overhead_us", "matmul_gflops", "conv_gflops" })
            Assert.True(root.GetProperty(key).GetDouble() > 0, $"{key} should be positive");
        Assert.True(root.GetProperty("threads").GetInt32() >= 1);
        foreach (var key in new[] { "blas", "libtorch", "omp_wait_policy" })
            Assert.False(string.IsNullOrEmpty(root.GetProperty(key).GetString()), $"{key} should be set");
        Assert.Equal(1, root.GetProperty("repeat").GetInt32());
    }

    [Fact]
    public void ThreadsOptionHoldsForTheTimedRuns()
    {
        var before = TorchRuntime.Threads;
        try
        {
            var r = CliRunner.Run("bench", "ops", "--json", "--repeat", "1", "--threads", "1");

            Assert.Equal(0, r.ExitCode);
            using var doc = JsonDocument.Parse(r.Out);
            Assert.Equal(1, doc.RootElement.GetProperty("threads").GetInt32());
        }
        finally
        {
            TorchRuntime.Threads = before;
        }
    }

    [Fact]
    public void OpsTableShowsTheThreeMeasures()
    {
        var r = CliRunner.Run("bench", "ops", "--repeat", "1");

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("op overhead", r.Out);
        Assert.Contains("matmul", r.Out);
        Assert.Contains("conv", r.Out);
    }

    [Fact]
    public void CompareWaitPolicyRunsBothChildProcesses()
    {
        var r = CliRunner.Run("bench", "ops", "--compare-wait-policy", "--json", "--repeat", "1");

        Assert.True(r.ExitCode == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var passive = doc.RootElement.GetProperty("passive");
        var @default = doc.RootElement.GetProperty("default");
        Assert.Equal("PASSIVE", passive.GetProperty("omp_wait_policy").GetString());
        Assert.NotEqual("PASSIVE", @default.GetProperty("omp_wait_policy").GetString());
        foreach (var run in new[] { passive, @default })
            Assert.True(run.GetProperty("matmul_gflops").GetDouble() > 0);
    }

    [Fact]
    public void ACancelledRunStopsWithOneLineAndExitCode130()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        var r = CliRunner.Run(cancelled.Token, "bench", "ops", "--repeat", "1000");

        Assert.Equal(ErrorReporter.Cancelled, r.ExitCode);
        Assert.Equal("error: cancelled", Assert.Single(r.ErrLines));
    }

    [Fact]
    public void MedianOfOddAndEvenCounts()
    {
        Assert.Equal(2, OpsBenchmark.Median([3, 1, 2]));
        Assert.Equal(2.5, OpsBenchmark.Median([4, 1, 3, 2]));
        Assert.Throws<ArgumentException>(() => OpsBenchmark.Median([]));
    }
}

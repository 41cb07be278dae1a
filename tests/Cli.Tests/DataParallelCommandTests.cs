using System.Diagnostics;
using System.Text.Json.Nodes;
using LatentDiffusion.Tests.Common;

namespace LatentDiffusion.Cli.Tests;

/// <summary>
/// <c>ldm train … --nproc 2</c>: two rank processes on 127.0.0.1 train the tiny DDPM, rank 0 alone writes,
/// a resume needs the same world size, and a rank killed mid-run makes the other exit with one line naming it.
/// </summary>
public class DataParallelCommandTests
{
    private static string TinyRecipe(string dir, long maxSteps)
    {
        var path = Path.Combine(dir, "tiny.json");
        File.WriteAllText(path, TinyRecipes.Ddpm(maxSteps));
        return path;
    }

    private static string TempDir() => Directory.CreateTempSubdirectory("ldm-ddp-cli-").FullName;

    [Fact]
    public void TwoRanksTrainRankZeroWritesAndAResumeNeedsTheSameWorldSize()
    {
        var dir = TempDir();
        try
        {
            var recipe = TinyRecipe(dir, 4);
            var run = Path.Combine(dir, "run");
            var r = CliRunner.Run("train", "ddpm", "--config", recipe, "--out", run, "--nproc", "2");
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Contains("trained 4 steps", r.Out);
            Assert.DoesNotContain("rank 1:", r.Err); // only rank 0's progress is forwarded
            var state = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "checkpoints", "step-000004", "trainer_state.json")))!;
            Assert.Equal(2, state["world_size"]!.GetValue<int>());
            Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length);

            // One process cannot resume what two made: one line naming the way that works.
            var alone = CliRunner.Run("train", "ddpm", "--config", recipe, "--out", run, "--resume");
            Assert.Equal(ErrorReporter.Failure, alone.ExitCode);
            Assert.Contains("it was made by 2 rank(s), this run has 1; resume with --nproc 2", Assert.Single(alone.ErrLines));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task ARankKilledMidRunMakesTheOtherExitWithALineNamingIt()
    {
        var (r, stopped) = await WithRankOne(rank1 => rank1.Kill());
        Assert.Equal(ErrorReporter.Failure, r.ExitCode);
        Assert.True(stopped < TimeSpan.FromSeconds(20), $"took {stopped}");
        Assert.Contains(r.ErrLines, l => l.StartsWith("error: lost rank 1 of 2: it stopped answering (all_reduce failed: ", StringComparison.Ordinal));
        Assert.Equal("error: rank 1 of 2 was killed by signal 9; the other ranks stopped", r.ErrLines[^1]);
    }

    [Fact]
    public async Task ARankThatHangsIsNamedAfterTheTimeoutAndKilled()
    {
        // The ranks inherit it (the CLI tests run one at a time); it bounds the rendezvous too, so it leaves room for a slow start.
        Environment.SetEnvironmentVariable("LDM_DIST_TIMEOUT", "6");
        try
        {
            var (r, stopped) = await WithRankOne(rank1 => Process.Start("kill", ["-STOP", rank1.Id.ToString()]).WaitForExit());
            Assert.Equal(ErrorReporter.Failure, r.ExitCode);
            Assert.True(stopped < TimeSpan.FromSeconds(30), $"took {stopped}"); // 6 s timeout + 5 s grace
            Assert.Contains(r.ErrLines, l => l.StartsWith("error: lost rank 1 of 2: it stopped answering (all_reduce failed: ", StringComparison.Ordinal));
            Assert.Equal("error: rank 1 of 2 stopped answering without exiting and was killed after the 6 s timeout (rank 0 lost it)", r.ErrLines[^1]);
        }
        finally
        {
            Environment.SetEnvironmentVariable("LDM_DIST_TIMEOUT", null);
        }
    }

    /// <summary>Starts <c>--nproc 2</c> on a long run, does <paramref name="fault"/> to rank 1 once both train, and returns the launcher's result and how long it took to end after the fault.</summary>
    private static async Task<(CliRunner.Result Result, TimeSpan Stopped)> WithRankOne(Action<Process> fault)
    {
        var dir = TempDir();
        try
        {
            var recipe = TinyRecipe(dir, 100_000);
            var run = Path.Combine(dir, "run");
            var launcher = Task.Run(() => CliRunner.Run("train", "ddpm", "--config", recipe, "--out", run, "--nproc", "2"));
            // Rank 0 has logged a few steps: both ranks are in the loop.
            var metrics = Path.Combine(run, "metrics.jsonl");
            var waited = Stopwatch.StartNew();
            while (!(File.Exists(metrics) && File.ReadAllLines(metrics).Length >= 3))
            {
                Assert.False(launcher.IsCompleted, launcher.IsCompleted ? (await launcher).Err : "");
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), "the ranks did not start training");
                await Task.Delay(100);
            }
            using var rank1 = RankProcess(run, 1);
            var faultAt = Stopwatch.StartNew();
            fault(rank1);
            var r = await launcher.WaitAsync(TimeSpan.FromSeconds(60));
            return (r, faultAt.Elapsed);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The child process of rank <paramref name="rank"/> training into <paramref name="run"/> (Linux: its environment in /proc).</summary>
    private static Process RankProcess(string run, int rank)
    {
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out var pid)) continue;
            try
            {
                var args = File.ReadAllText(Path.Combine(entry, "cmdline")).Split('\0');
                if (!args.Contains(run)) continue;
                var environment = File.ReadAllText(Path.Combine(entry, "environ")).Split('\0');
                if (environment.Contains($"RANK={rank}")) return Process.GetProcessById(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        throw new InvalidOperationException($"no rank {rank} process trains into {run}");
    }
}

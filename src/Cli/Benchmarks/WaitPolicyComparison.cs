using System.Diagnostics;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>Both runs of <c>ldm bench ops --compare-wait-policy</c>.</summary>
public sealed record WaitPolicyComparison(OpsResult Passive, OpsResult Default);

/// <summary>
/// Runs <c>ldm bench ops --json</c> as a child process twice: once as the binding sets it up
/// (OMP_WAIT_POLICY=PASSIVE and OPENBLAS_THREAD_TIMEOUT before libtorch loads) and once with
/// LDTORCH_THREAD_POLICY=default, which leaves libgomp's and OpenBLAS's own spinning defaults. Both
/// read the variables once, when they load, so only a fresh process can show the difference. The
/// variables inherited from this process are removed from both children so that the binding's choice
/// is what differs.
/// </summary>
public static class WaitPolicyRunner
{
    public static async Task<WaitPolicyComparison> CompareAsync(int repeat, int threads, CancellationToken cancellationToken)
    {
        var passive = await RunChildAsync("PASSIVE (binding default)", threadPolicy: null, repeat, threads, cancellationToken).ConfigureAwait(false);
        var @default = await RunChildAsync("LDTORCH_THREAD_POLICY=default", threadPolicy: "default", repeat, threads, cancellationToken).ConfigureAwait(false);
        return new WaitPolicyComparison(passive, @default);
    }

    private static async Task<OpsResult> RunChildAsync(string label, string? threadPolicy, int repeat, int threads,
        CancellationToken cancellationToken)
    {
        var (fileName, prefix) = SelfCommand.Get();
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in prefix) start.ArgumentList.Add(arg);
        foreach (var arg in new[] { "bench", "ops", "--json", "--repeat", repeat.ToString() }) start.ArgumentList.Add(arg);
        if (threads > 0)
        {
            start.ArgumentList.Add("--threads");
            start.ArgumentList.Add(threads.ToString());
        }
        start.Environment.Remove("OMP_WAIT_POLICY");
        start.Environment.Remove("OPENBLAS_THREAD_TIMEOUT");
        if (threadPolicy is null) start.Environment.Remove("LDTORCH_THREAD_POLICY");
        else start.Environment["LDTORCH_THREAD_POLICY"] = threadPolicy;

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        var output = await stdout.ConfigureAwait(false);
        var error = await stderr.ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            var reason = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "no message";
            throw new InvalidOperationException($"the {label} run ({fileName}) failed with exit code {process.ExitCode}: {reason}");
        }
        return Json.Deserialize<OpsResult>(output);
    }
}

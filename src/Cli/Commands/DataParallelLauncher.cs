using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using LatentDiffusion.Torch;
using LatentDiffusion.Torch.Distributed;

namespace LatentDiffusion.Cli.Commands;

/// <summary>
/// torchrun for one machine: <c>ldm train … --nproc N</c> starts N ranks of the same command as child
/// processes, with torchrun's environment (MASTER_ADDR=127.0.0.1, a free MASTER_PORT, RANK, WORLD_SIZE,
/// LOCAL_RANK), each its share of the cores (OMP_NUM_THREADS) and, with a GPU per rank, its own GPU
/// (CUDA_VISIBLE_DEVICES). Rank 0's output is forwarded as it is;
/// of the other ranks (whose progress repeats rank 0's) only the last line of a failed one, as "rank N: …". If a
/// rank fails, the others notice at their next collective (a lost peer, or the timeout) and exit; any rank
/// still running after the timeout is killed. One line names the rank that failed first; the exit code
/// is non-zero.
/// </summary>
internal static partial class DataParallelLauncher
{
    // After a rank fails, the others get the collective timeout plus this to notice and write their line.
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    public static int Run(CliContext context, IReadOnlyList<string> arguments, int nproc)
    {
        if (DistributedEnvironment.FromEnvironment() is not null)
            throw new UsageException("--nproc starts the ranks itself, but WORLD_SIZE is set: leave out --nproc to run as one rank of a job started elsewhere, or unset WORLD_SIZE");
        var port = FreeLoopbackPort();
        var environment = LaunchEnvironment(nproc, port);
        // The timeout the ranks will use (LDM_DIST_TIMEOUT or the default), validated before anything starts.
        var timeout = DistributedEnvironment.From(name => environment(0).GetValueOrDefault(name) ?? Environment.GetEnvironmentVariable(name))!.Timeout;
        var (fileName, prefix) = SelfCommand.Get();
        var output = new Lock();
        var ranks = new Process?[nproc];
        var lastLines = new string?[nproc];
        try
        {
            for (int r = 0; r < nproc; r++)
            {
                var start = new ProcessStartInfo(fileName)
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    UseShellExecute = false,
                };
                foreach (var a in prefix.Concat(arguments)) start.ArgumentList.Add(a);
                foreach (var (name, value) in environment(r)) start.Environment[name] = value;
                var process = new Process { StartInfo = start };
                var rank = r;
                process.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is null || rank != 0) return;
                    lock (output) context.Out.WriteLine(e.Data);
                };
                process.ErrorDataReceived += (_, e) =>
                {
                    if (e.Data is null) return;
                    if (e.Data.Trim().Length > 0) lastLines[rank] = e.Data.Trim();
                    if (rank == 0) lock (output) context.Err.WriteLine(e.Data);
                };
                if (!process.Start()) throw new InvalidOperationException($"could not start rank {r} ({fileName})");
                ranks[r] = process;
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
            }
            return Supervise(context, ranks!, lastLines, timeout, output);
        }
        finally
        {
            foreach (var p in ranks)
            {
                if (p is null) continue;
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.WaitForExit();
                p.Dispose();
            }
        }
    }

    /// <summary>Waits for every rank; after the first failure, gives the others the timeout to exit, then kills them.</summary>
    private static int Supervise(CliContext context, Process[] ranks, string?[] lastLines, TimeSpan timeout, Lock output)
    {
        var codes = new int?[ranks.Length];
        int? failed = null;
        DateTime? deadline = null;
        var killed = new List<int>();
        while (codes.Any(c => c is null))
        {
            for (int r = 0; r < ranks.Length; r++)
            {
                if (codes[r] is not null || !ranks[r].HasExited) continue;
                ranks[r].WaitForExit(); // drains the forwarded output
                codes[r] = ranks[r].ExitCode;
                if (codes[r] is not (0 or ErrorReporter.Cancelled) && failed is null)
                {
                    failed = r;
                    deadline = DateTime.UtcNow + timeout + Grace;
                }
            }
            if (deadline is { } d && DateTime.UtcNow > d)
            {
                for (int r = 0; r < ranks.Length; r++)
                {
                    if (codes[r] is not null) continue;
                    ranks[r].Kill(entireProcessTree: true);
                    ranks[r].WaitForExit();
                    codes[r] = ranks[r].ExitCode;
                    killed.Add(r);
                }
            }
            Thread.Sleep(50);
        }
        // A rank that failed by itself said why on its last line (one killed by a signal said nothing); rank 0's
        // is already out, and the others' are shown where they say something else.
        bool FailedItself(int r) => codes[r] is not (0 or ErrorReporter.Cancelled) && codes[r] <= 128 && !killed.Contains(r);
        for (int r = 1; r < ranks.Length; r++)
            if (FailedItself(r) && lastLines[r] is { } last && last != lastLines[0])
                lock (output) context.Err.WriteLine($"rank {r}: {last}");
        // Every rank refused the same way (a recipe error): that one line says it all.
        if (Enumerable.Range(0, ranks.Length).All(r => FailedItself(r) && lastLines[r] == lastLines[0])) return ErrorReporter.Failure;
        if (failed is { } first)
        {
            // A rank that hung (stopped, deadlocked) never exits: the first to fail is then the one that lost it,
            // whose line names it, and the hung one was killed at the deadline.
            var lost = first;
            if (lastLines[first] is { } line && LostRank().Match(line) is { Success: true } m
                && int.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, out var hung) && killed.Contains(hung))
            {
                lock (output) ErrorReporter.WriteLine(context,
                    $"rank {hung} of {ranks.Length} stopped answering without exiting and was killed after the {timeout.TotalSeconds:0.#} s timeout (rank {first} lost it)");
                return ErrorReporter.Failure;
            }
            var why = codes[lost]!.Value > 128 ? $"was killed by signal {codes[lost]!.Value - 128}" : $"failed (exit code {codes[lost]})";
            var rest = killed.Count > 0 ? $"; rank(s) {string.Join(", ", killed)} did not stop within {timeout.TotalSeconds:0.#} s and were killed" : "; the other ranks stopped";
            lock (output) ErrorReporter.WriteLine(context, $"rank {lost} of {ranks.Length} {why}{rest}");
            return ErrorReporter.Failure;
        }
        return codes.Any(c => c == ErrorReporter.Cancelled) ? ErrorReporter.Cancelled : 0;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"lost rank (\d+) of")]
    private static partial System.Text.RegularExpressions.Regex LostRank();

    /// <summary>torchrun's variables for rank <c>r</c> of <paramref name="nproc"/> on this machine, and its share of the cores.</summary>
    private static Func<int, Dictionary<string, string>> LaunchEnvironment(int nproc, int port)
    {
        var threads = Math.Max(1, Environment.ProcessorCount / nproc).ToString(CultureInfo.InvariantCulture);
        // One GPU per rank where there are enough and the user did not choose: each rank's cuda:0 is then its own.
        var ownGpu = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES") is null && TorchRuntime.CudaDeviceCount >= nproc;
        return r => new Dictionary<string, string>(ownGpu ? [new("CUDA_VISIBLE_DEVICES", r.ToString(CultureInfo.InvariantCulture))] : [])
        {
            [DistributedEnvironment.MasterAddressVariable] = "127.0.0.1",
            [DistributedEnvironment.MasterPortVariable] = port.ToString(CultureInfo.InvariantCulture),
            [DistributedEnvironment.RankVariable] = r.ToString(CultureInfo.InvariantCulture),
            [DistributedEnvironment.LocalRankVariable] = r.ToString(CultureInfo.InvariantCulture),
            [DistributedEnvironment.WorldSizeVariable] = nproc.ToString(CultureInfo.InvariantCulture),
            ["OMP_NUM_THREADS"] = threads,
        };
    }

    private static int FreeLoopbackPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }
}

using System.Net;
using System.Net.Sockets;

namespace LatentDiffusion.Tests.Common;

/// <summary>Loopback helpers for the data-parallel tests: a TCP port nobody listens on, and ranks on threads.</summary>
public static class Loopback
{
    /// <summary>A port on 127.0.0.1 that was free a moment ago (the OS picks it).</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Runs <paramref name="body"/> for ranks 0..n−1 on n threads and returns each rank's exception (or null); a rank hung past <paramref name="limit"/> fails.</summary>
    public static Exception?[] OnThreads(int n, TimeSpan limit, Action<int> body)
    {
        var failures = new Exception?[n];
        var threads = Enumerable.Range(0, n).Select(r => new Thread(() =>
        {
            try { body(r); }
            catch (Exception e) { failures[r] = e; }
        }) { Name = $"rank {r}" }).ToList();
        threads.ForEach(t => t.Start());
        foreach (var t in threads)
            if (!t.Join(limit)) throw new TimeoutException($"{t.Name} still runs after {limit.TotalSeconds} s");
        return failures;
    }
}

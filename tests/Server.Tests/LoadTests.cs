using System.Net;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Server.Tests;

/// <summary>Many clients at once, loopback only and bounded in count and time: every request answered, memory flat.</summary>
[Collection(LiveTensorCount.Name)]
public sealed class LoadTests
{
    private const int Clients = 50;

    [Fact]
    public async Task Fifty_concurrent_clients_are_all_answered_200_or_503_and_memory_stays_flat()
    {
        await using var s = await TestServer.StartAsync(queue: 8);
        await Round(s); // warm-up: first-call allocations, JIT, libtorch's pools
        var tensors = LiveTensorCount.Settled();
        var managed = GC.GetTotalMemory(forceFullCollection: true);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (ok, busy) = (0, 0);
        for (int round = 0; round < 2; round++)
        {
            var r = await Round(s);
            ok += r.Ok;
            busy += r.Busy;
        }
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 60);
        Assert.Equal(2 * Clients, ok + busy);
        Assert.True(ok >= 2 * 9, $"only {ok} of {2 * Clients} ran (the running job and 8 waiting should each time)");
        Assert.True(busy > 0, "50 clients against a queue of 8 should meet a full queue");

        Assert.Equal(tensors, LiveTensorCount.Settled()); // no native tensor left behind by any job
        var growth = GC.GetTotalMemory(forceFullCollection: true) - managed;
        Assert.True(growth < 16 << 20, $"managed memory grew by {growth >> 20} MiB over {2 * Clients} requests");
        await TestServer.Ok(await s.Client.GetAsync("sdapi/v1/progress")); // still alive
    }

    private static async Task<(int Ok, int Busy)> Round(TestServer s)
    {
        var requests = Enumerable.Range(0, Clients).Select(async i =>
        {
            using var client = new HttpClient { BaseAddress = s.Server.Url, Timeout = TimeSpan.FromSeconds(60) };
            using var response = await client.PostAsync("sdapi/v1/txt2img",
                new StringContent($"{{\"prompt\": \"client {i}\", \"steps\": 2, \"seed\": {i}}}", System.Text.Encoding.UTF8, "application/json"));
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable) Assert.NotNull(response.Headers.RetryAfter);
            else Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return response.StatusCode;
        }).ToList();
        var codes = await Task.WhenAll(requests);
        return (codes.Count(c => c == HttpStatusCode.OK), codes.Count(c => c == HttpStatusCode.ServiceUnavailable));
    }
}

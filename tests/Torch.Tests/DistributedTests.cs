using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using LatentDiffusion.Torch.Distributed;
using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// c10d through the C ABI: two ranks on two threads of this process, rendezvousing through a TCPStore on
/// 127.0.0.1 (a free port) or a FileStore in a temporary folder. Integer-valued data, so sums and
/// averages are exact. Faults (a port in use, an unreachable master, a wrong world size, a rank that
/// never arrives or leaves mid-run) are one-line errors within the timeout.
/// </summary>
public class DistributedTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(2);

    private static int FreePort() => Loopback.FreePort();

    private static Exception?[] OnThreads(int n, Action<int> body) => Loopback.OnThreads(n, TimeSpan.FromSeconds(60), body);

    private static void AssertNoFailures(Exception?[] failures)
    {
        foreach (var f in failures) Assert.Null(f);
    }

    // What the collectives must give, exactly, on 2 ranks.
    private static void Collectives(ProcessGroup group)
    {
        var r = group.Rank;
        using var scope = DisposeScope.Enter();
        var a = Tensors.Arange(6).Reshape(2, 3).To(DType.Float32) * (r + 1);
        var b = Tensors.Full([5], r + 1, DType.Float64);
        var c = Tensors.Arange(4).To(DType.Float32) + 10 * r;
        // A 16-byte bucket cap: several buckets, and a dtype change inside the list.
        group.AllReduce([a, b, c], bucketBytes: 16);
        Assert.Equal([0f, 3, 6, 9, 12, 15], a.ToArray<float>());
        Assert.Equal([3.0, 3, 3, 3, 3], b.ToArray<double>());
        Assert.Equal([10f, 12, 14, 16], c.ToArray<float>());

        var d = Tensors.Arange(6).To(DType.Float32) * (r + 1);
        var e = Tensors.Full([3], 4 * r + 2, DType.Float32);
        group.AllReduce([d, e], average: true);
        Assert.Equal([0f, 1.5f, 3, 4.5f, 6, 7.5f], d.ToArray<float>());
        Assert.Equal([4f, 4, 4], e.ToArray<float>());

        var f = Tensors.Full([2, 2], 7 + r, DType.Float32);
        var g = Tensors.Full([3], 100 * (r + 1), DType.Int64);
        group.Broadcast([f, g], root: 1);
        Assert.Equal([8f, 8, 8, 8], f.ToArray<float>());
        Assert.Equal([200L, 200, 200], g.ToArray<long>());
        group.Barrier();
    }

    [Fact]
    public void GlooIsBuiltIn() => Assert.True(ProcessGroup.HasGloo, "libldtorch was built without Gloo (install libgloo-dev)");

    [Fact]
    public void AllReduceBroadcastAndBarrierOverATcpStore()
    {
        var port = FreePort();
        AssertNoFailures(OnThreads(2, rank =>
        {
            using var store = Store.Tcp("127.0.0.1", port, 2, isMaster: rank == 0, Timeout);
            using var group = ProcessGroup.Create(store, rank, 2, Timeout, hostname: "127.0.0.1");
            Assert.Equal(rank, group.Rank);
            Assert.Equal(2, group.WorldSize);
            Collectives(group);
            group.Shutdown();
        }));
    }

    [Fact]
    public void AllReduceBroadcastAndBarrierOverAFileStore()
    {
        var dir = Directory.CreateTempSubdirectory("ldm-filestore-");
        try
        {
            var path = Path.Combine(dir.FullName, "store");
            AssertNoFailures(OnThreads(2, rank =>
            {
                using var store = Store.File(path, 2, Timeout);
                using var group = ProcessGroup.Create(store, rank, 2, Timeout, hostname: "127.0.0.1");
                Collectives(group);
                group.Shutdown();
            }));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void AStoreKeepsValuesAndCounters()
    {
        var port = FreePort();
        using var store = Store.Tcp("127.0.0.1", port, 1, isMaster: true, Timeout);
        store.Set("greeting", "hello");
        Assert.Equal("hello", store.Get("greeting"));
        Assert.Equal(2, store.Add("counter", 2));
        Assert.Equal(5, store.Add("counter", 3));
        Assert.Equal(5, store.Add("counter", 0));
    }

    [Fact]
    public void APortInUseIsOneLine()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var clock = Stopwatch.StartNew();
            var e = Assert.Throws<TorchException>(() => Store.Tcp("127.0.0.1", port, 2, isMaster: true, Short));
            TestUtil.AssertCleanMessage(e, "tcp_store");
            Assert.Contains($"cannot serve the rendezvous on 127.0.0.1:{port} (is the port in use?)", e.Message);
            Assert.True(clock.Elapsed < Short + TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public void AnUnreachableMasterIsOneLineWithinTheTimeout()
    {
        var port = FreePort(); // nobody listens there
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<TorchException>(() => Store.Tcp("127.0.0.1", port, 2, isMaster: false, Short));
        TestUtil.AssertCleanMessage(e, "tcp_store");
        Assert.Contains($"cannot reach the master 127.0.0.1:{port} within 2 s", e.Message);
        Assert.True(clock.Elapsed < Short + TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public void AWrongWorldSizeIsOneLineOnEveryRank()
    {
        var port = FreePort();
        var clock = Stopwatch.StartNew();
        var failures = OnThreads(2, rank =>
        {
            var world = rank == 0 ? 2 : 3;
            using var store = Store.Tcp("127.0.0.1", port, world, isMaster: rank == 0, Timeout);
            using var group = ProcessGroup.Create(store, rank, world, Timeout, hostname: "127.0.0.1");
        });
        foreach (var f in failures) TestUtil.AssertCleanMessage(Assert.IsType<TorchException>(f), "process_group");
        // Rank 0 sees the disagreement when rank 1 arrives; rank 1 sees it too, unless rank 0 has already closed the store
        // it serves (then rank 1 reports the master lost during the rendezvous).
        Assert.Contains("rank 1 was started with WORLD_SIZE 3, rank 0 with 2: every rank must be given the same WORLD_SIZE", failures[0]!.Message);
        Assert.Matches("every rank must be given the same WORLD_SIZE|lost the master 127.0.0.1:", failures[1]!.Message);
        Assert.True(clock.Elapsed < Timeout, $"took {clock.Elapsed}: a disagreement must not wait for the timeout");
    }

    [Fact]
    public void ARankOutsideTheWorldIsOneLine()
    {
        var port = FreePort();
        using var store = Store.Tcp("127.0.0.1", port, 2, isMaster: true, Timeout);
        var e = Assert.Throws<TorchException>(() => ProcessGroup.Create(store, 2, 2, Timeout));
        TestUtil.AssertCleanMessage(e, "process_group");
        Assert.Contains("RANK 2 is outside 0..1 (WORLD_SIZE 2)", e.Message);
    }

    [Fact]
    public void ARankThatNeverArrivesIsNamedWithinTheTimeout()
    {
        var port = FreePort();
        using var store = Store.Tcp("127.0.0.1", port, 3, isMaster: true, Short);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<TorchException>(() => ProcessGroup.Create(store, 0, 3, Short, hostname: "127.0.0.1"));
        TestUtil.AssertCleanMessage(e, "process_group");
        Assert.Contains("ranks 1, 2 of 3 did not arrive within 2 s", e.Message);
        Assert.True(clock.Elapsed < Short + TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
    }

    [Fact]
    public void ARankThatLeavesMidRunIsNamedByTheSurvivor()
    {
        var port = FreePort();
        var left = new ManualResetEventSlim();
        var clock = new Stopwatch();
        var failures = OnThreads(2, rank =>
        {
            using var store = Store.Tcp("127.0.0.1", port, 2, isMaster: rank == 0, Timeout);
            using var group = ProcessGroup.Create(store, rank, 2, Timeout, hostname: "127.0.0.1");
            using var scope = DisposeScope.Enter();
            var x = Tensors.Ones([4]);
            group.AllReduce([x]);
            if (rank == 1)
            {
                group.Dispose(); // its connections close and its heartbeat stops, as when a process dies
                left.Set();
                Thread.Sleep(TimeSpan.FromSeconds(3)); // keeps the store's client alive: only the group is gone
                return;
            }
            left.Wait();
            clock.Start();
            group.AllReduce([x]);
        });
        Assert.Null(failures[1]);
        var e = Assert.IsType<RankLostException>(failures[0]);
        Assert.Equal([1], e.LostRanks);
        Assert.StartsWith("lost rank 1 of 2: it stopped answering (all_reduce failed: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(clock.Elapsed < Timeout, $"took {clock.Elapsed}");
    }
}

/// <summary>torchrun's environment variables: read, defaulted, and each bad value one line naming the variable.</summary>
public class DistributedEnvironmentTests
{
    private static DistributedEnvironment? From(params (string Name, string Value)[] variables) =>
        DistributedEnvironment.From(name => variables.FirstOrDefault(v => v.Name == name).Value);

    [Fact]
    public void WithoutWorldSizeItIsOneProcess() => Assert.Null(From(("RANK", "3")));

    [Fact]
    public void TorchrunsVariablesAreRead()
    {
        var env = From(("WORLD_SIZE", "4"), ("RANK", "2"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "10.0.0.7"), ("MASTER_PORT", "29500"), ("LDM_DIST_TIMEOUT", "30"))!;
        Assert.Equal(new DistributedEnvironment("10.0.0.7", 29500, 2, 4, 0, TimeSpan.FromSeconds(30), Backend.Gloo), env);
        Assert.Equal(Backend.Nccl, From(("WORLD_SIZE", "1"), ("RANK", "0"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1"), ("LDM_DIST_BACKEND", "NCCL"))!.Backend);
        Assert.False(env.IsLoopback);
        var local = From(("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500"))!;
        Assert.Equal(1, local.LocalRank); // LOCAL_RANK defaults to RANK
        Assert.Equal(DistributedEnvironment.DefaultTimeout, local.Timeout);
        Assert.True(local.IsLoopback);
    }

    [Theory]
    [InlineData("2", null, "127.0.0.1", "29500", null, "RANK is not set (WORLD_SIZE is 2: set RANK too)")]
    [InlineData("2", "2", "127.0.0.1", "29500", null, "RANK is '2': it must be an integer in 0..1")]
    [InlineData("two", "0", "127.0.0.1", "29500", null, "WORLD_SIZE is 'two': it must be an integer in 1..65536")]
    [InlineData("2", "0", null, "29500", null, "MASTER_ADDR is not set (the address of rank 0's machine)")]
    [InlineData("2", "0", "127.0.0.1", "70000", null, "MASTER_PORT is '70000': it must be an integer in 1..65535")]
    [InlineData("2", "0", "127.0.0.1", "29500", "-1", "LDM_DIST_TIMEOUT is '-1': it must be a number of seconds in (0, 86400]")]
    [InlineData("2", "0", "127.0.0.1", "29500", null, "LDM_DIST_BACKEND is 'mpi': it must be gloo or nccl", "mpi")]
    public void ABadVariableIsOneLineNamingIt(string world, string? rank, string? address, string port, string? timeout, string expected, string? backend = null)
    {
        var e = Assert.Throws<DistributedConfigurationException>(() =>
            From(("WORLD_SIZE", world), ("RANK", rank!), ("MASTER_ADDR", address!), ("MASTER_PORT", port), ("LDM_DIST_TIMEOUT", timeout!), ("LDM_DIST_BACKEND", backend!)));
        Assert.Equal(expected, e.Message);
    }
}

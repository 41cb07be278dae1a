using System.Globalization;
using System.Net;

namespace LatentDiffusion.Torch.Distributed;

/// <summary>
/// Where this process stands in a data-parallel run, read from torchrun's environment variables:
/// MASTER_ADDR and MASTER_PORT (rank 0's TCP store), RANK, WORLD_SIZE, LOCAL_RANK (the rank on this
/// machine), and optionally LDM_DIST_TIMEOUT (seconds; default 300, as torch.distributed's 30 minutes is
/// too long to notice a lost rank) and LDM_DIST_BACKEND (gloo, the default, or nccl). Bad values are one
/// line naming the variable.
/// </summary>
public sealed record DistributedEnvironment(string MasterAddress, int MasterPort, int Rank, int WorldSize, int LocalRank, TimeSpan Timeout,
    Backend Backend = Backend.Gloo)
{
    public const string MasterAddressVariable = "MASTER_ADDR", MasterPortVariable = "MASTER_PORT", RankVariable = "RANK",
        WorldSizeVariable = "WORLD_SIZE", LocalRankVariable = "LOCAL_RANK", TimeoutVariable = "LDM_DIST_TIMEOUT",
        BackendVariable = "LDM_DIST_BACKEND";

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>The run's environment, or null when WORLD_SIZE is not set (a single process).</summary>
    public static DistributedEnvironment? FromEnvironment() => From(Environment.GetEnvironmentVariable);

    /// <summary>As <see cref="FromEnvironment"/>, from any variable lookup (tests, the launcher).</summary>
    public static DistributedEnvironment? From(Func<string, string?> variable)
    {
        var world = variable(WorldSizeVariable);
        if (string.IsNullOrWhiteSpace(world)) return null;
        int Int(string name, string? text, int min, int max)
        {
            if (string.IsNullOrWhiteSpace(text)) throw new DistributedConfigurationException($"{name} is not set (WORLD_SIZE is {world}: set {name} too)");
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
                throw new DistributedConfigurationException($"{name} is '{text}': it must be an integer in {min}..{max}");
            return v;
        }
        var worldSize = Int(WorldSizeVariable, world, 1, 65536);
        var rank = Int(RankVariable, variable(RankVariable), 0, worldSize - 1);
        var localRank = string.IsNullOrWhiteSpace(variable(LocalRankVariable)) ? rank : Int(LocalRankVariable, variable(LocalRankVariable), 0, worldSize - 1);
        var address = variable(MasterAddressVariable);
        if (string.IsNullOrWhiteSpace(address)) throw new DistributedConfigurationException($"{MasterAddressVariable} is not set (the address of rank 0's machine)");
        var port = Int(MasterPortVariable, variable(MasterPortVariable), 1, 65535);
        var timeoutText = variable(TimeoutVariable);
        var timeout = string.IsNullOrWhiteSpace(timeoutText) ? DefaultTimeout
            : double.TryParse(timeoutText, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 && s <= 86400 ? TimeSpan.FromSeconds(s)
            : throw new DistributedConfigurationException($"{TimeoutVariable} is '{timeoutText}': it must be a number of seconds in (0, 86400]");
        var backend = variable(BackendVariable)?.Trim().ToLowerInvariant() switch
        {
            null or "" or "gloo" => Backend.Gloo,
            "nccl" => Backend.Nccl,
            var other => throw new DistributedConfigurationException($"{BackendVariable} is '{other}': it must be gloo or nccl"),
        };
        return new DistributedEnvironment(address.Trim(), port, rank, worldSize, localRank, timeout, backend);
    }

    /// <summary>Whether the master is this machine (then Gloo binds to loopback, which needs no network).</summary>
    public bool IsLoopback => MasterAddress == "localhost" || (IPAddress.TryParse(MasterAddress, out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>
    /// Joins the run: rank 0 serves the TCP store, every rank connects, and the Gloo (or NCCL) group forms
    /// once all WORLD_SIZE ranks have arrived. The caller owns the result.
    /// </summary>
    public DistributedSession Connect()
    {
        var store = Store.Tcp(MasterAddress, MasterPort, WorldSize, isMaster: Rank == 0, Timeout);
        try
        {
            var group = ProcessGroup.Create(store, Rank, WorldSize, Timeout, Backend, IsLoopback ? "127.0.0.1" : null);
            return new DistributedSession(store, group);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }
}

/// <summary>A store and the process group formed through it; disposing leaves the group, then closes the store.</summary>
public sealed class DistributedSession(Store store, ProcessGroup group) : IDisposable
{
    public Store Store { get; } = store;
    public ProcessGroup Group { get; } = group;

    public void Dispose()
    {
        Group.Dispose();
        Store.Dispose();
    }
}

/// <summary>A torchrun environment variable is missing or malformed.</summary>
public sealed class DistributedConfigurationException(string message) : Exception(message);

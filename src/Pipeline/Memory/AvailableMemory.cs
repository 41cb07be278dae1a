using System.Globalization;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Pipeline.Memory;

/// <summary>How much memory a request may plan for on a device, read when it is asked (other processes come and go).</summary>
public static class AvailableMemory
{
    /// <summary>
    /// Bytes free on <paramref name="device"/>: on CUDA, the device's total minus what is in use; on the CPU,
    /// Linux's MemAvailable (what can be allocated without swapping, page cache included), else the .NET
    /// runtime's view of the machine's (or container's) memory.
    /// </summary>
    public static long Bytes(Device device)
    {
        if (device.Type == DeviceType.Cuda)
        {
            var (used, total) = TorchRuntime.CudaMemory(device.Index);
            return Math.Max(0, total - used);
        }
        return MemAvailable() ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    }

    /// <summary>/proc/meminfo's MemAvailable in bytes; null where there is no such file or line.</summary>
    internal static long? MemAvailable(string path = "/proc/meminfo")
    {
        try
        {
            if (!File.Exists(path)) return null;
            foreach (var line in File.ReadLines(path))
            {
                if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
                var parts = line["MemAvailable:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 1 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kib))
                    return kib * 1024; // the file says "kB" and means KiB
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }
}

using System.Text;
using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>One operator of an <see cref="OpProfiler"/> profile: its calls, total time and FLOPs (null where not counted).</summary>
public sealed record OpProfileEntry(string Name, long Calls, double Seconds, double? Flops);

/// <summary>
/// An op-level profile of what the calling thread runs through libtorch (its RecordFunction callbacks): only the
/// top-level operators are timed, so an operator called by another (linear → addmm, the matmuls inside attention)
/// is part of its caller's time and never counted twice, and the entries never overlap: their sum is at most the
/// wall time, the rest being the time spent outside libtorch (C#, the binding). FLOPs are counted for
/// convolutions, linear layers, matrix products and the fused attention (2 · multiply-accumulates). One profile
/// at a time; start and stop on the same thread.
/// </summary>
public sealed class OpProfiler : IDisposable
{
    private static int active;
    private bool running;

    private OpProfiler(bool byShape)
    {
        Tensor.Check(NativeMethods.ProfilerStart(byShape ? 1 : 0), "profiler_start");
        running = true;
        Volatile.Write(ref active, 1);
    }

    /// <summary>Whether a profile is being recorded (on any thread): <see cref="BatchStreams"/> then runs a batch as one pass.</summary>
    public static bool IsActive => Volatile.Read(ref active) != 0;

    /// <param name="byShape">Key the entries by operator name and input shapes (which convolution is slow), not by name only.</param>
    public static OpProfiler Start(bool byShape = false) => new(byShape);

    /// <summary>Stops recording and returns the entries, longest total time first.</summary>
    public unsafe IReadOnlyList<OpProfileEntry> Stop()
    {
        if (!running) throw new InvalidOperationException("the profiler was already stopped");
        running = false;
        var count = NativeMethods.ProfilerStop();
        if (count >= 0) Volatile.Write(ref active, 0);
        Tensor.Check(count, "profiler_stop");
        var entries = new List<OpProfileEntry>(count);
        var name = new byte[1024];
        for (int i = 0; i < count; i++)
        {
            long calls, ns;
            double flops;
            fixed (byte* p = name) Tensor.Check(NativeMethods.ProfilerEntry(i, p, name.Length, &calls, &ns, &flops), "profiler_entry");
            var length = Array.IndexOf(name, (byte)0);
            entries.Add(new OpProfileEntry(Encoding.UTF8.GetString(name, 0, length), calls, ns / 1e9, flops >= 0 ? flops : null));
        }
        return entries;
    }

    public void Dispose()
    {
        if (running) _ = Stop();
    }
}

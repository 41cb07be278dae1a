using System.Diagnostics;
using LatentDiffusion.Torch;

namespace LatentDiffusion.Cli.Benchmarks;

/// <summary>What <c>ldm bench ops --json</c> prints; bench/torch_reference.py prints the same keys.</summary>
public sealed record OpsResult(
    double OpOverheadUs,
    double MatmulGflops,
    double ConvGflops,
    int Threads,
    string Blas,
    string Libtorch,
    string OmpWaitPolicy,
    int Repeat,
    string Implementation);

/// <summary>
/// Three numbers that say whether the binding costs anything over libtorch itself:
/// the round trip of a tiny op (binding overhead), a 1024² fp32 matmul (BLAS) and a 3×3
/// 128→128 convolution on 4×128×64×64 (libtorch's conv kernels). Each is the median of
/// <c>repeat</c> timed runs after a warm-up; every result tensor is disposed at once.
/// </summary>
public static class OpsBenchmark
{
    public const int OpIterationsPerRun = 10_000;
    public const int OpWarmupIterations = 2_000;
    public const int MatmulSize = 1024;
    public const int HeavyWarmupRuns = 2;
    public static readonly long[] ConvInputShape = [4, 128, 64, 64];
    public const int ConvChannelsOut = 128;

    /// <summary>Runs the three measurements; <paramref name="threads"/> &gt; 0 sets libtorch's
    /// intra-op threads for the timed runs, 0 keeps the default.</summary>
    public static OpsResult Run(int repeat, int threads = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(repeat, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        var liveBefore = Tensor.LiveCount;
        // The heavy ops first: the op-overhead loop allocates many small objects and makes the
        // runtime re-JIT its hot methods on a background thread, which competes for the cores.
        var matmul = MatmulGflops(repeat, threads, cancellationToken);
        var conv = ConvGflops(repeat, threads, cancellationToken);
        var overhead = OpOverheadMicroseconds(repeat, threads, cancellationToken);
        var result = new OpsResult(
            OpOverheadUs: Math.Round(overhead, 3),
            MatmulGflops: Math.Round(matmul, 2),
            ConvGflops: Math.Round(conv, 2),
            Threads: TorchRuntime.Threads,
            Blas: TorchRuntime.Blas,
            Libtorch: TorchRuntime.LibTorchVersion,
            OmpWaitPolicy: TorchRuntime.OmpWaitPolicy,
            Repeat: repeat,
            Implementation: "LatentDiffusion.NET");
        // The count is process-wide: the finalizer may free other code's tensors meanwhile (a drop), never add any.
        var leaked = Tensor.LiveCount - liveBefore;
        if (leaked > 0) throw new InvalidOperationException($"the benchmark leaked {leaked} native tensors");
        return result;
    }

    /// <summary>Median time of one <c>a + b</c> on 1-element tensors, including creating and
    /// disposing the result's handle, in microseconds.</summary>
    public static double OpOverheadMicroseconds(int repeat, int threads = 0, CancellationToken cancellationToken = default)
    {
        using var a = Tensor.From([1f], 1);
        using var b = Tensor.From([2f], 1);
        for (var i = 0; i < OpWarmupIterations; i++)
        {
            using var r = a + b;
        }
        ApplyThreads(threads);
        var samples = new double[repeat];
        for (var run = 0; run < repeat; run++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < OpIterationsPerRun; i++)
            {
                using var r = a + b;
            }
            samples[run] = watch.Elapsed.TotalMicroseconds / OpIterationsPerRun;
        }
        return Median(samples);
    }

    /// <summary>GFLOP/s of a 1024×1024 fp32 matmul (2·n³ flops).</summary>
    public static double MatmulGflops(int repeat, int threads = 0, CancellationToken cancellationToken = default)
    {
        const long n = MatmulSize;
        using var generator = new Generator(0);
        using var a = Tensors.Randn([n, n], generator);
        using var b = Tensors.Randn([n, n], generator);
        var seconds = TimeRuns(repeat, threads, () => a.MatMul(b), cancellationToken);
        return 2.0 * n * n * n / seconds / 1e9;
    }

    /// <summary>GFLOP/s of a 3×3 convolution 128→128, padding 1, on a 4×128×64×64 fp32 input
    /// (2·N·Cout·H·W·Cin·9 flops).</summary>
    public static double ConvGflops(int repeat, int threads = 0, CancellationToken cancellationToken = default)
    {
        var shape = ConvInputShape;
        long batch = shape[0], channelsIn = shape[1], height = shape[2], width = shape[3];
        using var generator = new Generator(0);
        using var input = Tensors.Randn(shape, generator);
        using var weight = Tensors.Randn([ConvChannelsOut, channelsIn, 3, 3], generator);
        using var bias = Tensors.Randn([ConvChannelsOut], generator);
        var seconds = TimeRuns(repeat, threads, () => Functional.Conv2d(input, weight, bias, padding: 1), cancellationToken);
        return 2.0 * batch * ConvChannelsOut * height * width * channelsIn * 9 / seconds / 1e9;
    }

    // Median seconds of one call after HeavyWarmupRuns untimed calls; each result is disposed
    // before the clock stops, as Python frees an unassigned result at the end of the statement.
    private static double TimeRuns(int repeat, int threads, Func<Tensor> op, CancellationToken cancellationToken)
    {
        for (var i = 0; i < HeavyWarmupRuns; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            op().Dispose();
        }
        ApplyThreads(threads);
        var samples = new double[repeat];
        for (var run = 0; run < repeat; run++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var watch = Stopwatch.StartNew();
            op().Dispose();
            samples[run] = watch.Elapsed.TotalSeconds;
        }
        return Median(samples);
    }

    // Applied after each warm-up, i.e. once every native entry point the timed runs use has been
    // called: LatentDiffusion.Torch's library resolver runs again for each entry point's first call
    // and resets the thread count to the number of cores, which would undo a setting made earlier.
    private static void ApplyThreads(int threads)
    {
        if (threads <= 0) return;
        _ = TorchRuntime.Threads; // binds the getter's entry point too
        TorchRuntime.Threads = threads;
        if (TorchRuntime.Threads != threads)
            throw new InvalidOperationException($"libtorch kept {TorchRuntime.Threads} threads after being set to {threads}");
    }

    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("no samples", nameof(values));
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}

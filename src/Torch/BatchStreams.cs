using System.Runtime.ExceptionServices;
using LatentDiffusion.Torch.Native;

namespace LatentDiffusion.Torch;

/// <summary>
/// Runs the samples of one inference batch on the CPU as concurrent streams, each on its share of the intra-op
/// threads (issue 19): with classifier-free guidance every U-Net call is a batch of two, and on two cores the two
/// halves run one per core instead of every operator being split over both. That removes the threads woken and joined
/// in every operator (and the split of each product), which is where the bf16 SD1.5 U-Net lost 15–20 % against its
/// products' standalone rates. Measured on the 2-core machine (bench/README.md, "Batch streams"): the bf16 SD1.5 U-Net
/// at 256², batch 2, 0.448–0.476 → 0.419–0.451 s (10 alternating pairs), and with one core taken by another process
/// 0.80–0.81 → 0.59–0.67 s (a stream goes on at full speed on the free core instead of every operator waiting for the
/// shared one); f32 no faster (its products are slower per operator, so the fixed costs are a smaller share), so by
/// default only reduced-precision passes run as streams.
/// <para>
/// The first stream runs on the calling thread, the others on worker threads kept for the process, which run as the
/// caller: libtorch's thread-local state (grad and inference mode, dispatch keys, profiler callbacks) and the
/// binding's per-thread switches are carried over (ld_thread_state_*). Each stream's operators run on
/// threads / streams intra-op threads (OpenMP's per-thread count), so the work per core is the same and only the
/// synchronisation goes. Results equal the batch run as one pass up to float rounding (a product's blocking can
/// depend on its row count; tests bound it); for a given setting they are deterministic.
/// </para>
/// <para>
/// A batch runs as one pass where streams do not apply: autograd on, not the CPU, a batch or thread count that the
/// stream count does not divide, a profile being recorded (its entries would overlap), inside a stream, a libtorch
/// whose threads are not OpenMP's, or while another thread's batch holds the workers (it does not wait).
/// </para>
/// </summary>
public static class BatchStreams
{
    private const string Variable = "LDTORCH_BATCH_STREAMS";
    private const int WorkerStackBytes = 8 << 20; // the main thread's default on Linux

    private static readonly Lock Gate = new();
    private static readonly List<Worker> Workers = new();
    private static bool configured;
    private static int? count;
    private static int supported; // 0 unknown, 1 yes, -1 no
    private static long runs;
    [ThreadStatic] private static bool inStream;
    [ThreadStatic] private static int threadCount; // 0: none, else this thread's override

    /// <summary>
    /// Streams per batch: null (the default; <c>LDTORCH_BATCH_STREAMS</c> unset or <c>auto</c>) runs bfloat16 and float16
    /// passes as 2 streams and float32 as one; 1 (<c>LDTORCH_BATCH_STREAMS=1</c> or <c>0</c>) turns streams off;
    /// N ≥ 2 runs N streams at every dtype. A value of the variable that is none of these is refused in one line.
    /// </summary>
    public static int? Count
    {
        get
        {
            if (!configured)
            {
                count = Parse(Environment.GetEnvironmentVariable(Variable));
                configured = true;
            }
            return count;
        }
        set
        {
            if (value is < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "the stream count must be at least 1 (1: off), or null (auto)");
            count = value;
            configured = true;
        }
    }

    /// <summary>
    /// Forwards on the calling thread only run as <paramref name="streams"/> streams (1: one pass) at every dtype until
    /// the returned scope is disposed; other threads keep <see cref="Count"/>.
    /// </summary>
    public static IDisposable Override(int streams)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        var previous = threadCount;
        threadCount = streams;
        return new Restore(previous);
    }

    private sealed class Restore(int previous) : IDisposable
    {
        private bool disposed;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            threadCount = previous;
        }
    }

    /// <summary>Batches run as streams since the process started (every stream count).</summary>
    public static long Runs => Interlocked.Read(ref runs);

    /// <summary>A value of <c>LDTORCH_BATCH_STREAMS</c>: null for auto (or unset), else the stream count (0 and 1: off).</summary>
    public static int? Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Trim() == "auto") return null;
        if (int.TryParse(value.Trim(), out var n) && n is >= 0 and <= 1024) return Math.Max(n, 1);
        throw new ArgumentException($"{Variable} must be auto, 0 or 1 (off), or a stream count up to 1024, not \"{value}\"");
    }

    /// <summary>How many streams a forward over the batch-major <paramref name="sample"/> runs as, here and now (1: one pass).</summary>
    public static int For(Tensor sample)
    {
        if (inStream || sample.Device.Type != DeviceType.Cpu || sample.Dim == 0) return 1;
        var n = threadCount > 0 ? threadCount : Count ?? (sample.DType is DType.BFloat16 or DType.Float16 ? 2 : 1);
        var batch = sample.Size(0);
        if (n < 2 || batch % n != 0 || Autograd.IsGradEnabled || OpProfiler.IsActive) return 1;
        var threads = TorchRuntime.Threads;
        if (threads % n != 0 || !Supported()) return 1;
        return n;
    }

    /// <summary>
    /// Whether the calling thread's intra-op count can be set alone: probed once by setting it to 1 (the native side
    /// checks that libtorch then reads 1; called where the count is at least 2, so the probe can tell) and back.
    /// </summary>
    private static bool Supported()
    {
        if (supported == 0)
        {
            var previous = NativeMethods.SetThreadIntraOpThreads(1);
            if (previous > 0) NativeMethods.SetThreadIntraOpThreads(previous);
            supported = previous > 0 ? 1 : -1;
        }
        return supported > 0;
    }

    /// <summary>
    /// Runs <paramref name="pass"/> over the batch of <paramref name="sample"/> as <see cref="For"/> streams and joins
    /// their outputs along the batch (dim 0); false where the batch runs as one pass (then nothing ran).
    /// </summary>
    public static bool TryRun(Tensor sample, Func<BatchSlice, Tensor> pass, out Tensor output)
    {
        var ok = TryRun(sample, pass, parts => Tensor.Cat(parts, 0), out var joined);
        output = joined!;
        return ok;
    }

    /// <summary>
    /// <see cref="TryRun(Tensor, Func{BatchSlice, Tensor}, out Tensor)"/> for a pass with several outputs:
    /// <paramref name="join"/> makes the whole batch's from the streams' (in batch order), which are then disposed.
    /// </summary>
    public static bool TryRun<T>(Tensor sample, Func<BatchSlice, T> pass, Func<IReadOnlyList<T>, T> join, out T? output)
        where T : class, IDisposable
    {
        output = null;
        var streams = For(sample);
        if (streams < 2 || !Gate.TryEnter()) return false;
        try
        {
            output = Run(sample.Size(0), streams, pass, join);
            Interlocked.Increment(ref runs);
            return true;
        }
        finally
        {
            Gate.Exit();
        }
    }

    private static T Run<T>(long batch, int streams, Func<BatchSlice, T> pass, Func<IReadOnlyList<T>, T> join)
        where T : class, IDisposable
    {
        var length = batch / streams;
        var threadsEach = TorchRuntime.Threads / streams;
        var results = new T?[streams];
        var errors = new ExceptionDispatchInfo?[streams];
        var state = NativeMethods.ThreadStateCapture();
        if (state == IntPtr.Zero) throw new TorchException("thread_state_capture", NativeMethods.LastError() ?? "failed");
        try
        {
            while (Workers.Count < streams - 1) Workers.Add(new Worker());
            for (int i = 1; i < streams; i++)
            {
                var index = i;
                Workers[i - 1].Post(() => RunSlice(state, threadsEach, pass, new BatchSlice(batch, index * length, length), results, errors, index));
            }
            RunSlice(IntPtr.Zero, threadsEach, pass, new BatchSlice(batch, 0, length), results, errors, 0);
            for (int i = 1; i < streams; i++) Workers[i - 1].Wait();
        }
        finally
        {
            NativeMethods.ThreadStateFree(state);
        }
        try
        {
            foreach (var error in errors) error?.Throw();
            return join(Array.ConvertAll(results, r => r!));
        }
        finally
        {
            foreach (var r in results) r?.Dispose();
        }
    }

    /// <summary>One stream: on a worker under the caller's <paramref name="state"/> (zero: the caller itself), on its threads.</summary>
    private static void RunSlice<T>(IntPtr state, int threads, Func<BatchSlice, T> pass, BatchSlice slice, T?[] results,
        ExceptionDispatchInfo?[] errors, int index)
    {
        var scope = IntPtr.Zero;
        var previousThreads = -1;
        try
        {
            if (state != IntPtr.Zero)
            {
                scope = NativeMethods.ThreadStateEnter(state);
                if (scope == IntPtr.Zero) throw new TorchException("thread_state_enter", NativeMethods.LastError() ?? "failed");
            }
            previousThreads = NativeMethods.SetThreadIntraOpThreads(threads);
            Tensor.Check(previousThreads, "set_thread_intra_op_threads");
            inStream = true;
            results[index] = pass(slice);
        }
        catch (Exception e)
        {
            errors[index] = ExceptionDispatchInfo.Capture(e);
        }
        finally
        {
            inStream = false;
            slice.DisposeViews();
            if (previousThreads > 0) NativeMethods.SetThreadIntraOpThreads(previousThreads);
            if (scope != IntPtr.Zero) NativeMethods.ThreadStateExit(scope);
        }
    }

    /// <summary>A thread kept for the process that runs one stream at a time.</summary>
    private sealed class Worker
    {
        private readonly SemaphoreSlim start = new(0);
        private readonly SemaphoreSlim done = new(0);
        private Action? job;

        public Worker()
        {
            var thread = new Thread(Loop, WorkerStackBytes) { IsBackground = true, Name = "ld-batch-stream" };
            thread.Start();
        }

        public void Post(Action work)
        {
            job = work;
            start.Release();
        }

        public void Wait() => done.Wait();

        private void Loop()
        {
            while (true)
            {
                start.Wait();
                try
                {
                    job!(); // RunSlice catches what the pass throws
                }
                finally
                {
                    job = null;
                    done.Release();
                }
            }
        }
    }
}

/// <summary>
/// The samples [<see cref="Start"/>, <see cref="Start"/> + <see cref="Length"/>) of a batch of <see cref="Batch"/> that
/// one stream of <see cref="BatchStreams"/> computes.
/// </summary>
public sealed class BatchSlice(long batch, long start, long length)
{
    private readonly List<Tensor> views = new();

    public long Batch { get; } = batch;
    public long Start { get; } = start;
    public long Length { get; } = length;

    /// <summary>
    /// This slice's rows of a batch-major input (its first dimension the batch), a view that lives until the stream's
    /// pass returns; any other tensor (a timestep shared by the batch, a condition broadcast over it) as it is; null as null.
    /// </summary>
    public Tensor? Of(Tensor? input)
    {
        if (input is null || input.Dim == 0 || input.Size(0) != Batch) return input;
        var view = input.Narrow(0, Start, Length);
        view.DetachFromDisposeScope();
        lock (views) views.Add(view);
        return view;
    }

    internal void DisposeViews()
    {
        lock (views)
        {
            foreach (var v in views) v.Dispose();
            views.Clear();
        }
    }
}

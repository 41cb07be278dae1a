using System.Diagnostics;
using LatentDiffusion.Onnx;
using LatentDiffusion.Pipeline.Imaging;
using LatentDiffusion.Pipeline.StableDiffusion;

namespace LatentDiffusion.Server;

/// <summary>Where the running job is: AUTOMATIC1111's progress state.</summary>
/// <param name="JobCount">Jobs admitted (running and waiting).</param>
/// <param name="Step">Steps done by the running job (0 when none runs).</param>
/// <param name="Steps">Its step count.</param>
/// <param name="Elapsed">Time since it started.</param>
/// <param name="Preview">Its latest preview, if any.</param>
/// <param name="Interrupted">Whether it was interrupted.</param>
/// <param name="Started">When it started (AUTOMATIC1111's job_timestamp), null when none runs.</param>
public sealed record JobProgress(int JobCount, int Step, int Steps, TimeSpan Elapsed, RgbImage? Preview, bool Interrupted, DateTime? Started);

/// <summary>
/// One job at a time on the model: the loaded pipeline is shared by every request and used by one job at a
/// time; at most <see cref="ServeOptions.QueueCapacity"/> jobs wait behind it, and one more is refused
/// (503 with Retry-After) instead of piling up. A job is cancelled when its client disconnects and on
/// <see cref="Shutdown"/>; <see cref="Interrupt"/> ends it early with the partial result (AUTOMATIC1111's interrupt).
/// Switching the model is a job too, so it never happens under a running generation.
/// </summary>
public sealed class JobQueue : IDisposable
{
    private readonly SemaphoreSlim gate = new(1, 1);
    private readonly CancellationTokenSource shutdown = new();
    private readonly ServeOptions options;
    private int admitted;
    private RunningJob? current;
    private double lastJobSeconds = 1;
    private StableDiffusionPipeline pipeline;

    /// <summary>Loads the start model (its errors surface here, before the server listens).</summary>
    public JobQueue(ServeOptions options, ModelCatalog catalog)
    {
        this.options = options;
        Catalog = catalog;
        pipeline = ModelLoader.Load(catalog.Start.Path, "auto", options.Pipeline);
        try
        {
            AddAdapters(pipeline);
        }
        catch
        {
            pipeline.Dispose();
            throw;
        }
        Model = catalog.Start;
    }

    /// <summary>The embeddings of --embeddings-dir that the loaded model could not take, by name, with why (AUTOMATIC1111's "skipped").</summary>
    public IReadOnlyDictionary<string, string> SkippedEmbeddings => Volatile.Read(ref pipeline).Embeddings.Skipped;

    /// <summary>The width of the loaded model's token embeddings (AUTOMATIC1111's embedding "shape").</summary>
    public int EmbeddingWidth => Volatile.Read(ref pipeline).TextEncoder.Config.HiddenSize;

    /// <summary>The embeddings loaded into the loaded model.</summary>
    public IReadOnlyList<Pipeline.Adapters.TextualInversionEmbedding> Embeddings => Volatile.Read(ref pipeline).Embeddings.Loaded;

    // Every model the server loads looks LoRA names up in --lora-dir and has the embeddings of --embeddings-dir (those that fit it).
    private void AddAdapters(StableDiffusionPipeline pipe)
    {
        if (options.LoraDirectory is { } loras) pipe.Loras.Directory = loras;
        var all = pipe.Embeddings; // made here, not lazily by a GET on another thread
        if (options.EmbeddingsDirectory is { } embeddings) all.LoadDirectory(embeddings);
    }

    private readonly Dictionary<string, Pipeline.Engines.IControlNet> controlNets = new(StringComparer.Ordinal);

    /// <summary>
    /// The ControlNet at <paramref name="path"/> for the loaded model, loaded on first use and kept until the model changes;
    /// called only from a job (the queue's one thread at a time).
    /// </summary>
    public Pipeline.Engines.IControlNet ControlNet(string path)
    {
        if (controlNets.TryGetValue(path, out var loaded)) return loaded;
        try
        {
            return controlNets[path] = pipeline.LoadControlNet(path);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or FormatException or ArgumentException or NotSupportedException)
        {
            throw ApiException.Invalid($"ControlNet '{Path.GetFileName(Path.TrimEndingDirectorySeparator(path))}' could not be loaded for {Model.Title}: {e.Message.ReplaceLineEndings(" ")}");
        }
    }

    private void DisposeControlNets()
    {
        foreach (var c in controlNets.Values) c.Dispose();
        controlNets.Clear();
    }

    public ModelCatalog Catalog { get; }

    /// <summary>The model loaded now.</summary>
    public ModelEntry Model { get; private set; }

    /// <summary>Reported when a job ends: what ran, how long, and whether it failed.</summary>
    public event Action<string, TimeSpan, Exception?>? JobFinished;

    /// <summary>A snapshot for /sdapi/v1/progress.</summary>
    public JobProgress Progress()
    {
        var count = Volatile.Read(ref admitted);
        if (Volatile.Read(ref current) is not { } job) return new JobProgress(count, 0, 0, TimeSpan.Zero, null, false, null);
        var state = job.State;
        return new JobProgress(count, state?.Step ?? 0, state?.TotalSteps ?? 0, job.Clock.Elapsed, job.Preview, job.Interrupted, job.Started);
    }

    /// <summary>
    /// Interrupts the running job (AUTOMATIC1111's interrupt): its work's interrupt token fires, and a generation ends after
    /// its running step with the images decoded so far; waiting jobs still run.
    /// </summary>
    public void Interrupt()
    {
        if (Volatile.Read(ref current) is { } job) job.Interrupt();
    }

    /// <summary>Cancels the running and the waiting jobs and refuses new ones (the server is stopping).</summary>
    public void Shutdown() => shutdown.Cancel();

    /// <summary>
    /// Runs <paramref name="work"/> on the shared pipeline when its turn comes, after loading
    /// <paramref name="model"/> when it names another model than the loaded one.
    /// <paramref name="work"/> gets the pipeline, the progress sink, the cancellation (client gone, server stopping: throw) and
    /// the interrupt token (<see cref="Interrupt"/>: finish early with what there is).
    /// </summary>
    /// <exception cref="ApiException">503 when the queue is full or the server stops.</exception>
    /// <exception cref="OperationCanceledException">when <paramref name="aborted"/> fires (the client went away).</exception>
    public async Task<T> RunAsync<T>(string name, ModelEntry? model,
        Func<StableDiffusionPipeline, IProgress<GenerationProgress>, CancellationToken, CancellationToken, T> work, CancellationToken aborted)
    {
        if (shutdown.IsCancellationRequested) throw new ApiException(503, "ShuttingDown", "the server is shutting down");
        if (Interlocked.Increment(ref admitted) > options.QueueCapacity + 1)
        {
            Interlocked.Decrement(ref admitted);
            var retry = (int)Math.Clamp(Math.Ceiling(Volatile.Read(ref lastJobSeconds) * (options.QueueCapacity + 1)), 1, 3600);
            throw new ApiException(503, "QueueFull", $"the queue is full ({options.QueueCapacity} waiting behind the running job); retry in {retry} s")
            {
                RetryAfterSeconds = retry,
            };
        }
        using var job = new RunningJob(CancellationTokenSource.CreateLinkedTokenSource(aborted, shutdown.Token));
        try
        {
            await gate.WaitAsync(job.Cancellation.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Decrement(ref admitted);
            throw Cancelled(job, aborted);
        }
        Exception? failure = null;
        try
        {
            job.Clock.Restart(); // the job's time counts from its turn, not from its arrival
            Volatile.Write(ref current, job);
            return await Task.Factory.StartNew(() =>
            {
                if (model is not null && model.Path != Model.Path) Load(model);
                return work(pipeline, job, job.Cancellation.Token, job.InterruptToken);
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        }
        catch (OperationCanceledException e)
        {
            failure = e;
            throw Cancelled(job, aborted);
        }
        catch (Exception e)
        {
            failure = e;
            throw;
        }
        finally
        {
            Volatile.Write(ref current, null);
            Volatile.Write(ref lastJobSeconds, Math.Max(0.1, job.Clock.Elapsed.TotalSeconds));
            gate.Release();
            Interlocked.Decrement(ref admitted);
            JobFinished?.Invoke(name, job.Clock.Elapsed, failure);
        }
    }

    // A cancelled job: the client that went away gets nothing (the OperationCanceledException travels on);
    // one stopped by the shutdown gets a line saying so. (An interrupted job is not cancelled: it answers its partial result.)
    private Exception Cancelled(RunningJob job, CancellationToken aborted)
    {
        if (aborted.IsCancellationRequested) return new OperationCanceledException(aborted);
        if (shutdown.IsCancellationRequested) return new ApiException(503, "ShuttingDown", "the server is shutting down; the job was cancelled");
        return new OperationCanceledException();
    }

    private void Load(ModelEntry entry)
    {
        // The new model loads before the old one is freed, so a model that fails to load leaves the server as it was.
        StableDiffusionPipeline next;
        try
        {
            next = ModelLoader.Load(entry.Path, "auto", options.Pipeline);
            try
            {
                AddAdapters(next);
            }
            catch
            {
                next.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or FormatException or ArgumentException)
        {
            throw ApiException.Invalid($"model '{entry.Title}' could not be loaded: {e.Message.ReplaceLineEndings(" ")}");
        }
        var old = pipeline;
        DisposeControlNets(); // made for the old model's U-Net
        pipeline = next;
        Model = entry;
        old.Dispose();
    }

    public void Dispose()
    {
        shutdown.Cancel();
        // A cancelled job stops at its next step; the model is freed only after it, never under it.
        if (!gate.Wait(TimeSpan.FromMinutes(10))) return;
        DisposeControlNets();
        pipeline.Dispose();
        gate.Dispose();
        shutdown.Dispose();
    }

    /// <summary>A job's cancellation, its interrupt and the progress it reported.</summary>
    private sealed class RunningJob(CancellationTokenSource cancellation) : IProgress<GenerationProgress>, IDisposable
    {
        private readonly CancellationTokenSource interrupt = new();
        public CancellationTokenSource Cancellation { get; } = cancellation;
        public CancellationToken InterruptToken => interrupt.Token;
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public DateTime Started { get; } = DateTime.Now;
        public volatile GenerationProgress? State;
        public volatile RgbImage? Preview;
        public volatile bool Interrupted;

        public void Report(GenerationProgress value)
        {
            State = value;
            if (value.Preview is { } preview) Preview = preview;
        }

        public void Interrupt()
        {
            Interrupted = true;
            try
            {
                interrupt.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // the job ended between the read of `current` and this call
            }
        }

        public void Dispose()
        {
            interrupt.Dispose();
            Cancellation.Dispose();
        }
    }
}

using LatentDiffusion.Tests.Common;
using Xunit;

namespace LatentDiffusion.Torch.Tests;

/// <summary>
/// Issue 19: <see cref="BatchStreams"/> runs a batch's slices concurrently, one on the caller and the others on worker
/// threads that run as the caller, each on its share of the intra-op threads, and falls back to one pass wherever
/// streams do not apply. Alone in its collection: the workers are process-wide (a parallel test holding them would
/// make a batch here run as one pass) and some tests count live tensors.
/// </summary>
[Collection(LiveTensorCount.Name)]
public sealed class BatchStreamsTests : IDisposable
{
    private readonly int threads = TorchRuntime.Threads;

    // Two intra-op threads, so that two streams divide them on any machine (a 1-core one included).
    public BatchStreamsTests() => TorchRuntime.Threads = 2;

    public void Dispose() => TorchRuntime.Threads = threads;

    private sealed record Seen(long Start, long Length, int ThreadId, int IntraOpThreads, bool GradEnabled, bool FusedAttention);

    /// <summary>A pass that records where and how it ran, returning <paramref name="output"/> of its slice.</summary>
    private static Func<BatchSlice, Tensor> Recording(List<Seen> seen, Func<BatchSlice, Tensor> output) => s =>
    {
        lock (seen) seen.Add(new(s.Start, s.Length, Environment.CurrentManagedThreadId, TorchRuntime.Threads, Autograd.IsGradEnabled, TorchRuntime.FusedCpuAttentionActive));
        return output(s);
    };

    private static Tensor Batch(long n) => Tensors.Arange(n * 6, dtype: DType.Float32).Reshape(n, 2, 3);

    [Fact]
    public void EachSliceRunsOnItsOwnThreadWithItsShareOfTheThreadsAndTheOutputsJoinInOrder()
    {
        using var x = Batch(4);
        var seen = new List<Seen>();
        using var streams = BatchStreams.Override(2);
        using var noGrad = Autograd.NoGrad();
        var runs = BatchStreams.Runs;
        Assert.True(BatchStreams.TryRun(x, Recording(seen, s => s.Of(x)! * 2), out var output));
        using (output)
        {
            Assert.Equal(runs + 1, BatchStreams.Runs);
            Assert.Equal([0L, 2L], seen.Select(v => v.Start).Order());
            Assert.All(seen, v => Assert.Equal(2, v.Length));
            Assert.Equal(2, seen.Select(v => v.ThreadId).Distinct().Count());
            Assert.Contains(seen, v => v.ThreadId == Environment.CurrentManagedThreadId && v.Start == 0); // the first on the caller
            Assert.All(seen, v => Assert.Equal(1, v.IntraOpThreads));
            using var expected = x * 2;
            TensorAssert.Close(output, expected, 0, 0);
        }
        Assert.Equal(2, TorchRuntime.Threads); // the caller's own count is back
    }

    [Fact]
    public void WorkersRunWithTheCallersGradModeAndPerThreadSwitches()
    {
        using var x = Batch(2);
        var seen = new List<Seen>();
        using var streams = BatchStreams.Override(2);
        using var noGrad = Autograd.NoGrad();
        using var attention = TorchRuntime.UseFusedCpuAttention(false);
        Assert.True(BatchStreams.TryRun(x, Recording(seen, s => s.Of(x)!.Clone()), out var output));
        output.Dispose();
        Assert.Equal(2, seen.Count);
        Assert.All(seen, v => Assert.False(v.GradEnabled)); // a fresh thread has grad mode on
        Assert.All(seen, v => Assert.False(v.FusedAttention));
        // After the stream the worker has its own state again: a batch run with the switch on sees it on there.
        using var on = TorchRuntime.UseFusedCpuAttention(true);
        var expected = TorchRuntime.FusedCpuAttentionActive;
        seen.Clear();
        Assert.True(BatchStreams.TryRun(x, Recording(seen, s => s.Of(x)!.Clone()), out output));
        output.Dispose();
        Assert.All(seen, v => Assert.Equal(expected, v.FusedAttention));
    }

    [Fact]
    public void ABatchRunsAsOnePassWhereStreamsDoNotApply()
    {
        var called = 0;
        Tensor Pass(BatchSlice s)
        {
            called++;
            return Tensors.Zeros([s.Length]);
        }
        using var even = Batch(2);
        using var odd = Batch(3);
        using var bf16 = even.To(DType.BFloat16);
        bool Try(Tensor x)
        {
            var ran = BatchStreams.TryRun(x, Pass, out var output);
            if (ran) output.Dispose();
            return ran;
        }

        using (BatchStreams.Override(2))
        {
            Assert.False(Try(even)); // autograd on: training keeps its one pass
            using var noGrad = Autograd.NoGrad();
            Assert.False(Try(odd)); // 3 samples do not split in 2
            using (OpProfiler.Start()) Assert.False(Try(even)); // a profile would see the streams' operators overlap
            using (BatchStreams.Override(3)) Assert.False(Try(Batch(3))); // 3 streams do not divide 2 threads
            Assert.Equal(0, called);
            // Inside a stream, a nested batch runs as one pass.
            var nested = new List<bool>();
            Assert.True(BatchStreams.TryRun(even, s =>
            {
                lock (nested) nested.Add(Try(even));
                return s.Of(even)!.Clone();
            }, out var output));
            output.Dispose();
            Assert.Equal([false, false], nested);
        }
        using (BatchStreams.Override(1))
        {
            using var noGrad = Autograd.NoGrad();
            Assert.False(Try(even));
        }
        // The default (no override, LDTORCH_BATCH_STREAMS unset in the tests): bf16 as 2 streams, f32 as one pass.
        if (BatchStreams.Count is null)
        {
            using var noGrad = Autograd.NoGrad();
            Assert.False(Try(even));
            Assert.True(Try(bf16));
        }
    }

    [Fact]
    public void AnErrorInAStreamReachesTheCallerAndTheWorkersStayUsable()
    {
        using var x = Batch(2);
        using var streams = BatchStreams.Override(2);
        using var noGrad = Autograd.NoGrad();
        var before = LiveTensorCount.Settled();
        var error = Assert.Throws<InvalidOperationException>(() => BatchStreams.TryRun(x, s =>
        {
            var y = s.Of(x)! + 1; // the caller's slice succeeds: its output is freed
            if (s.Start > 0)
            {
                y.Dispose();
                throw new InvalidOperationException("no such sample");
            }
            return y;
        }, out _));
        Assert.Equal("no such sample", error.Message);
        Assert.True(BatchStreams.TryRun(x, s => s.Of(x)! + 1, out var output));
        output.Dispose();
        Assert.Equal(before, LiveTensorCount.Settled()); // views, outputs and the failed stream's tensors all freed
    }

    [Fact]
    public void OnlyBatchMajorInputsAreSlicedAndTheViewsLiveUntilThePassReturns()
    {
        using var x = Batch(2);
        using var scalar = Tensors.Scalar(3.0);
        using var one = Tensors.Ones([1, 5]);
        using var streams = BatchStreams.Override(2);
        using var noGrad = Autograd.NoGrad();
        var before = LiveTensorCount.Settled();
        Assert.True(BatchStreams.TryRun(x, s =>
        {
            Assert.Same(scalar, s.Of(scalar));
            Assert.Same(one, s.Of(one));
            Assert.Null(s.Of(null));
            var rows = s.Of(x)!;
            Assert.Equal([1L, 2, 3], rows.Shape);
            return rows * scalar;
        }, out var output));
        output.Dispose();
        Assert.Equal(before, LiveTensorCount.Settled());
    }

    [Fact]
    public void AnotherCallerWhileTheWorkersAreBusyRunsItsBatchAsOnePass()
    {
        using var x = Batch(2);
        using var started = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        bool? second = null;
        var other = new Thread(() =>
        {
            started.Wait();
            using var streams = BatchStreams.Override(2);
            using var noGrad = Autograd.NoGrad();
            second = BatchStreams.TryRun(x, s => s.Of(x)!.Clone(), out var o);
            if (second == true) o.Dispose();
            release.Set();
        });
        other.Start();
        using (BatchStreams.Override(2))
        using (Autograd.NoGrad())
        {
            Assert.True(BatchStreams.TryRun(x, s =>
            {
                if (s.Start == 0)
                {
                    started.Set();
                    Assert.True(release.Wait(TimeSpan.FromSeconds(30)));
                }
                return s.Of(x)!.Clone();
            }, out var output));
            output.Dispose();
        }
        other.Join();
        Assert.False(second);
    }

    [Fact]
    public void TheSettingIsAutoOffOrACountAndAnythingElseIsOneLine()
    {
        Assert.Null(BatchStreams.Parse(null));
        Assert.Null(BatchStreams.Parse(" auto "));
        Assert.Equal(1, BatchStreams.Parse("0"));
        Assert.Equal(1, BatchStreams.Parse("1"));
        Assert.Equal(4, BatchStreams.Parse("4"));
        foreach (var bad in new[] { "two", "-1", "1e9", "2.5" })
        {
            var e = Assert.Throws<ArgumentException>(() => BatchStreams.Parse(bad));
            Assert.Contains("LDTORCH_BATCH_STREAMS", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => BatchStreams.Override(0));
    }
}

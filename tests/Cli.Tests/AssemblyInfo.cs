// The CLI tests load libtorch, run benchmarks and start child processes: one at a time, so that
// timings are not disturbed and the live-tensor count is this test's alone.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]

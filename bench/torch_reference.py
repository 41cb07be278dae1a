#!/usr/bin/python3
"""PyTorch's numbers for the three measurements of `ldm bench ops`.

Run with Debian's PyTorch (python3-torch 1.13, the same libtorch that the binding uses):

    /usr/bin/python3 bench/torch_reference.py [--repeat N] [--threads N] [--table]

Same sizes and same method as src/Cli/Benchmarks/OpsBenchmark.cs: the median of N timed runs
after a warm-up, time.perf_counter, every result freed at once, threads = number of cores
(unless OMP_NUM_THREADS is set). Prints a JSON object with the keys that `ldm bench ops --json`
prints.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import torch

OP_ITERATIONS_PER_RUN = 10_000
OP_WARMUP_ITERATIONS = 2_000
MATMUL_SIZE = 1024
HEAVY_WARMUP_RUNS = 2
CONV_INPUT_SHAPE = (4, 128, 64, 64)
CONV_CHANNELS_OUT = 128


def op_overhead_us(repeat):
    """Median time of one `a + b` on 1-element tensors (the result is freed at once), in µs."""
    a = torch.tensor([1.0])
    b = torch.tensor([2.0])
    for _ in range(OP_WARMUP_ITERATIONS):
        a + b
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(OP_ITERATIONS_PER_RUN):
            a + b
        samples.append((time.perf_counter() - start) * 1e6 / OP_ITERATIONS_PER_RUN)
    return statistics.median(samples)


def time_runs(repeat, op):
    """Median seconds of one call after HEAVY_WARMUP_RUNS untimed calls."""
    for _ in range(HEAVY_WARMUP_RUNS):
        op()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        op()  # the unassigned result is freed before the clock stops
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def matmul_gflops(repeat):
    n = MATMUL_SIZE
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    seconds = time_runs(repeat, lambda: torch.matmul(a, b))
    return 2.0 * n ** 3 / seconds / 1e9


def conv_gflops(repeat):
    batch, channels_in, height, width = CONV_INPUT_SHAPE
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*CONV_INPUT_SHAPE, generator=g)
    w = torch.randn(CONV_CHANNELS_OUT, channels_in, 3, 3, generator=g)
    bias = torch.randn(CONV_CHANNELS_OUT, generator=g)
    seconds = time_runs(repeat, lambda: torch.nn.functional.conv2d(x, w, bias, padding=1))
    return 2.0 * batch * CONV_CHANNELS_OUT * height * width * channels_in * 9 / seconds / 1e9


def blas():
    """The same description as Torch.Blas: the loaded OpenBLAS's configuration, else "mkl",
    "reference" (netlib libblas) or "unknown"."""
    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:
        return "unknown"
    for path in sorted(libraries):
        name = os.path.basename(path)
        if "blas" in name:
            try:
                config = ctypes.CDLL(path).openblas_get_config
            except (OSError, AttributeError):
                continue
            config.restype = ctypes.c_char_p
            return "openblas " + config().decode()
    if any("libmkl" in os.path.basename(p) for p in libraries):
        return "mkl"
    if any("libblas" in os.path.basename(p) for p in libraries):
        return "reference"
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", "-n", type=int, default=10, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: cores, or OMP_NUM_THREADS")
    parser.add_argument("--table", action="store_true", help="print a short table instead of JSON")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)

    # The same order as `ldm bench ops`: the heavy ops first, then the op-overhead loop.
    matmul = matmul_gflops(args.repeat)
    conv = conv_gflops(args.repeat)
    overhead = op_overhead_us(args.repeat)
    result = {
        "op_overhead_us": round(overhead, 3),
        "matmul_gflops": round(matmul, 2),
        "conv_gflops": round(conv, 2),
        "threads": torch.get_num_threads(),
        "blas": blas(),
        "libtorch": torch.__version__.split("+")[0].split("a")[0],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default: active)"),
        "repeat": args.repeat,
        "implementation": "PyTorch " + torch.__version__,
    }
    if args.table:
        print(f"op overhead  {result['op_overhead_us']:8.2f} µs")
        print(f"matmul       {result['matmul_gflops']:8.1f} GFLOP/s")
        print(f"conv         {result['conv_gflops']:8.1f} GFLOP/s")
        print(f"PyTorch {torch.__version__}, {result['threads']} threads, OMP_WAIT_POLICY {result['omp_wait_policy']}")
        print(f"BLAS: {result['blas']}")
    else:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        print()


if __name__ == "__main__":
    main()

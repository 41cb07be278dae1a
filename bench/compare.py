#!/usr/bin/python3
"""Runs `ldm bench ops --json` and bench/torch_reference.py alternately and prints a Markdown
table of both, side by side (median over the rounds of each implementation's medians).

    /usr/bin/python3 bench/compare.py [--rounds 7] [--repeat 10] [--threads N] [--passive-torch]

Alternating the two in one session spreads any background load over both; the rounds' spread
is printed so that a noisy machine shows as one.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = [("op_overhead_us", "op overhead (µs, lower is better)", "{:.2f}"),
        ("matmul_gflops", "matmul 1024² fp32 (GFLOP/s)", "{:.1f}"),
        ("conv_gflops", "conv 3×3 128→128 on 4×128×64×64 (GFLOP/s)", "{:.1f}")]


def run(command, env=None):
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)}: exit {out.returncode}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for both; 0: the number of cores")
    parser.add_argument("--passive-torch", action="store_true",
                        help="run PyTorch with OMP_WAIT_POLICY=PASSIVE too, so that only the binding differs")
    args = parser.parse_args()

    ours_cmd = [os.path.join(ROOT, "ldm"), "bench", "ops", "--json", "--repeat", str(args.repeat)]
    torch_cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_reference.py"), "--repeat", str(args.repeat)]
    if args.threads > 0:
        ours_cmd += ["--threads", str(args.threads)]
        torch_cmd += ["--threads", str(args.threads)]
    torch_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE") if args.passive_torch else None
    ours, theirs = [], []
    for i in range(args.rounds):
        ours.append(run(ours_cmd))
        theirs.append(run(torch_cmd, torch_env))
        print(f"round {i + 1}/{args.rounds}: ours {[ours[-1][k] for k, _, _ in KEYS]}, "
              f"PyTorch {[theirs[-1][k] for k, _, _ in KEYS]}", file=sys.stderr)

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    def spread(rows, key, fmt):
        values = [r[key] for r in rows]
        return f"{fmt.format(min(values))}–{fmt.format(max(values))}"

    print(f"| measure | LatentDiffusion.NET (`./ldm bench ops --json`) | PyTorch {theirs[0]['implementation'].split()[-1]} "
          f"(`bench/torch_reference.py`) | ours / PyTorch |")
    print("| --- | ---: | ---: | ---: |")
    for key, label, fmt in KEYS:
        o, t = med(ours, key), med(theirs, key)
        print(f"| {label} | {fmt.format(o)} ({spread(ours, key, fmt)}) | {fmt.format(t)} ({spread(theirs, key, fmt)}) | {o / t:.2f} |")
    print()
    print(f"{args.rounds} alternating rounds, each the median of {args.repeat} timed runs; the table shows the median "
          f"of the rounds and (min–max). threads {ours[0]['threads']} / {theirs[0]['threads']}, "
          f"OMP_WAIT_POLICY {ours[0]['omp_wait_policy']} / {theirs[0]['omp_wait_policy']}, libtorch {ours[0]['libtorch']}, "
          f"BLAS {ours[0]['blas']}")


if __name__ == "__main__":
    main()

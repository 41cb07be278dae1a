#!/usr/bin/python3
"""Times one forward pass of a U-Net (SD1.5's by default, SDXL's with --config) here (`ldm bench unet --json`) and in diffusers on
PyTorch, alternately, and prints both with their ratio.

    /usr/bin/python3 bench/compare_unet.py [--rounds 5] [--dtype f32|bf16] [--size 256] [--batch 2]
                                           [--repeat 3] [--realtime] [--json]

The reference is diffusers' UNet2DConditionModel built from the same config
(configs/models/sd15-unet.json), every parameter drawn from N(0, 0.02) as `ldm bench unet` does,
with SDXL's added conditions for a config with addition_embed_type "text_time" (pooled text embeds
[batch, projection_class_embeddings_input_dim - 6 * addition_time_embed_dim] and the six time ids of a
size × size image, as `ldm bench unet` supplies them),
on Debian's PyTorch (python3-torch 1.13, the libtorch this project links), under torch.no_grad()
as diffusers' pipelines run it, with torch.set_num_threads(cores) and OMP_WAIT_POLICY=PASSIVE:
one warm-up, then the median of --repeat runs, the same method as `ldm bench unet`. diffusers is
imported from the Python path; it is not a dependency of this project: put a diffusers 0.30.x
source tree and its imports (huggingface_hub, …) on PYTHONPATH, or pass --pythonpath.

Each round runs ours, then the reference, each in a new process, so that background load falls on
both; the table gives the median over the rounds (min–max) and the median of the per-round ratios.
--realtime runs both under `chrt -f 1` (root): on a machine shared with other work this comes close
to what an idle machine measures; without it both compete with the other processes as they are.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

from compare import ROOT, run  # bench/compare.py: runs a command in the checkout, parses its JSON

CONFIG = os.path.join(ROOT, "configs", "models", "sd15-unet.json")
TOKENS = 77
TIMESTEP = 500


def reference(args):
    """The child process: diffusers' U-Net, one warm-up and the median of --repeat runs; prints JSON."""
    import torch
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count())
    from diffusers import UNet2DConditionModel
    import diffusers

    with open(args.config) as f:
        config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    torch.manual_seed(0)
    model = UNet2DConditionModel(**config).eval()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    latent = args.size // 8
    cross = config.get("cross_attention_dim", 768)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
        model = model.to(dtype)
        x = torch.randn(args.batch, config.get("in_channels", 4), latent, latent).to(dtype)
        text = torch.randn(args.batch, TOKENS, cross).to(dtype)
        kwargs = {}
        if config.get("addition_embed_type") == "text_time":
            # SDXL: diffusers' added_cond_kwargs, the pooled text embeds and (original size, crop, target size).
            pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            ids = torch.tensor([[args.size, args.size, 0, 0, args.size, args.size]] * args.batch, dtype=torch.float32)
            kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(args.batch, pooled).to(dtype), "time_ids": ids.to(dtype)}
        processor = type(next(iter(model.attn_processors.values()))).__name__
        model(x, TIMESTEP, text, **kwargs)  # warm-up
        samples = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            model(x, TIMESTEP, text, **kwargs)
            samples.append(time.perf_counter() - start)
    print(json.dumps({
        "seconds": statistics.median(samples),
        "implementation": f"diffusers {diffusers.__version__} ({processor}), PyTorch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: KiB
        "parameters": sum(p.numel() for p in model.parameters()),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (latents are size / 8)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per process (median)")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--realtime", action="store_true", help="run both under chrt -f 1 (root)")
    parser.add_argument("--pythonpath", help="prepended to PYTHONPATH for the reference (where diffusers is)")
    parser.add_argument("--ldm", default=os.path.join(ROOT, "ldm"), help="the ldm to time (default: this checkout's ./ldm)")
    parser.add_argument("--baseline-ldm", help="another build of ldm (an earlier commit) to time in the same rounds")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--reference-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_run:
        reference(args)
        return

    prefix = ["chrt", "-f", "1"] if args.realtime else []
    bench_args = ["bench", "unet", "--config", args.config, "--size", str(args.size), "--batch", str(args.batch),
                  "--dtype", args.dtype, "--repeat", str(args.repeat), "--json"]
    ours_cmd = prefix + [args.ldm] + bench_args
    base_cmd = prefix + [args.baseline_ldm] + bench_args if args.baseline_ldm else None
    ref_cmd = prefix + [sys.executable, os.path.abspath(__file__), "--reference-run", "--config", args.config,
                        "--size", str(args.size), "--batch", str(args.batch), "--dtype", args.dtype,
                        "--repeat", str(args.repeat)]
    ref_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if args.pythonpath:
        ref_env["PYTHONPATH"] = os.pathsep.join(p for p in [args.pythonpath, os.environ.get("PYTHONPATH")] if p)

    ours, theirs, base = [], [], []
    for i in range(args.rounds):
        ours.append(run(ours_cmd))
        theirs.append(run(ref_cmd, ref_env))
        if base_cmd:
            base.append(run(base_cmd))
        print(f"round {i + 1}/{args.rounds}: ours {ours[-1]['seconds']:.3f} s, reference {theirs[-1]['seconds']:.3f} s, "
              f"ratio {ours[-1]['seconds'] / theirs[-1]['seconds']:.2f}"
              + (f", baseline {base[-1]['seconds']:.3f} s" if base else "") + f", load {os.getloadavg()[0]:.1f}", file=sys.stderr)

    o = [r["seconds"] for r in ours]
    t = [r["seconds"] for r in theirs]
    ratios = [a / b for a, b in zip(o, t)]
    summary = {
        "ours_seconds": statistics.median(o), "ours_min": min(o), "ours_max": max(o),
        "reference_seconds": statistics.median(t), "reference_min": min(t), "reference_max": max(t),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "rounds": args.rounds, "repeat": args.repeat, "dtype": args.dtype, "size": args.size, "batch": args.batch,
        "realtime": args.realtime, "reference": theirs[0]["implementation"], "threads": [ours[0]["threads"], theirs[0]["threads"]],
        "libtorch": ours[0]["libtorch"],
        "ours_peak_rss_mb": max(r["peak_rss_mb"] for r in ours), "reference_peak_rss_mb": max(r["peak_rss_mb"] for r in theirs),
    }
    if base:
        b = [r["seconds"] for r in base]
        base_ratios = [x / y for x, y in zip(b, t)]
        summary.update({"baseline_seconds": statistics.median(b), "baseline_min": min(b), "baseline_max": max(b),
                        "baseline_ratio": statistics.median(base_ratios)})
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"| U-Net forward, {args.batch} × 4 × {args.size // 8} × {args.size // 8}, {args.dtype} | seconds (median of rounds, min–max) | peak RSS |")
    print("| --- | ---: | ---: |")
    print(f"| LatentDiffusion.NET (`ldm bench unet`) | {summary['ours_seconds']:.2f} ({min(o):.2f}–{max(o):.2f}) | {summary['ours_peak_rss_mb'] / 1024:.1f} GiB |")
    print(f"| {summary['reference']} | {summary['reference_seconds']:.2f} ({min(t):.2f}–{max(t):.2f}) | {summary['reference_peak_rss_mb'] / 1024:.1f} GiB |")
    print(f"| ours / reference (median of the rounds' ratios) | {summary['ratio']:.2f} ({min(ratios):.2f}–{max(ratios):.2f}) | |")
    if base:
        print(f"| baseline (`{args.baseline_ldm}`) | {summary['baseline_seconds']:.2f} ({min(b):.2f}–{max(b):.2f}) |")
        print(f"| baseline / reference | {summary['baseline_ratio']:.2f} ({min(base_ratios):.2f}–{max(base_ratios):.2f}) |")
    print()
    print(f"{args.rounds} alternating rounds, each process one warm-up and the median of {args.repeat} runs; "
          f"threads {summary['threads'][0]} / {summary['threads'][1]}; {'both under chrt -f 1' if args.realtime else 'normal scheduling'}; "
          f"load average at the end {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()

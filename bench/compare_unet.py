#!/usr/bin/python3
"""Times one forward pass of a U-Net (SD1.5's by default, SDXL's with --config), a VAE decode (--model vae) or the CLIP
text encoder (--model text) here (`ldm bench unet|vae|text --json`) and in the reference on PyTorch, alternately, and
prints both with their ratio.

    /usr/bin/python3 bench/compare_unet.py [--model unet|vae|text] [--rounds 5] [--dtype f32|bf16] [--size 256] [--batch 2]
                                           [--repeat 3] [--realtime] [--lock LOCKFILE] [--json]

--model vae: diffusers' AutoencoderKL.decode of random latents [batch, 4, size/8, size/8] (configs/models/sd15-vae.json);
--model text: token ids [batch, 77] through the pure-torch CLIPTextModel of bench/reference.py (transformers' eager
attention; transformers is not installed here) from configs/models/sd15-text-encoder.json.

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
import statistics
import sys
import time

from compare import ROOT, run  # bench/compare.py: runs a command in the checkout, parses its JSON
import reference as ref  # bench/reference.py: the process prefix, the summary, the pure-torch CLIP

CONFIGS = {m: os.path.join(ROOT, "configs", "models", f"sd15-{f}.json") for m, f in [("unet", "unet"), ("vae", "vae"), ("text", "text-encoder")]}
TOKENS = 77
TIMESTEP = 500


def build(args, torch, dtype):
    """The reference model with N(0, 0.02) weights, its inputs, its forward and a description of the implementation."""
    import diffusers
    with open(args.config) as f:
        config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    torch.manual_seed(0)
    latent = args.size // 8
    kwargs = {}
    if args.model == "text":
        model = ref.clip_text_model(config)
        inputs = (torch.randint(0, config["vocab_size"], (args.batch, TOKENS)),)
        name = f"pure-torch CLIPTextModel (transformers' eager attention), PyTorch {torch.__version__}"
        forward = lambda m, ids: m(ids)[0]
    elif args.model == "vae":
        model = diffusers.AutoencoderKL.from_config(config)
        inputs = (torch.randn(args.batch, config.get("latent_channels", 4), latent, latent),)
        name = f"diffusers {diffusers.__version__} AutoencoderKL.decode, PyTorch {torch.__version__}"
        forward = lambda m, z: m.decode(z).sample
    else:
        model = diffusers.UNet2DConditionModel(**config)
        cross = config.get("cross_attention_dim", 768)
        inputs = (torch.randn(args.batch, config.get("in_channels", 4), latent, latent), torch.randn(args.batch, TOKENS, cross))
        if config.get("addition_embed_type") == "text_time":
            # SDXL: diffusers' added_cond_kwargs, the pooled text embeds and (original size, crop, target size).
            pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            ids = torch.tensor([[args.size, args.size, 0, 0, args.size, args.size]] * args.batch, dtype=torch.float32)
            kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(args.batch, pooled).to(dtype), "time_ids": ids.to(dtype)}
        processor = type(next(iter(model.attn_processors.values()))).__name__
        name = f"diffusers {diffusers.__version__} ({processor}), PyTorch {torch.__version__}"
        forward = lambda m, x, text: m(x, TIMESTEP, text, **kwargs).sample
    model = model.eval()
    for p in model.parameters():
        p.normal_(0, 0.02)
    model = model.to(dtype)
    inputs = tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)
    return model, inputs, forward, name


def reference(args):
    """The child process: the reference model, one warm-up and the median of --repeat runs; prints JSON."""
    import torch
    ref.setup_threads()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with torch.no_grad():
        model, inputs, forward, name = build(args, torch, dtype)
        out = forward(model, *inputs)  # warm-up
        if args.profile:
            # Where the reference's time goes, by libtorch operator (the same operators `ldm bench` calls).
            with torch.autograd.profiler.profile() as prof:
                forward(model, *inputs)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile), file=sys.stderr)
        samples = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = forward(model, *inputs)
            samples.append(time.perf_counter() - start)
    print(json.dumps({
        "seconds": statistics.median(samples),
        "implementation": name,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "peak_rss_mb": ref.peak_rss_mb(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "output_max_abs": out.float().abs().max().item(),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ref.add_common_arguments(parser)
    parser.set_defaults(rounds=5)
    parser.add_argument("--model", choices=sorted(CONFIGS), default="unet")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (latents are size / 8; not for text)")
    parser.add_argument("--batch", type=int, help="batch size (default: 2, the VAE 1)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per process (median)")
    parser.add_argument("--config", help="the model's config (default: SD1.5's, configs/models/sd15-*.json)")
    parser.add_argument("--no-f32-reference", action="store_true", help="bf16: ours skips its f32 run and parity (its peak memory is then the bf16 model's)")
    parser.add_argument("--ldm", default=os.path.join(ROOT, "ldm"), help="the ldm to time (default: this checkout's ./ldm)")
    parser.add_argument("--baseline-ldm", help="another build of ldm (an earlier commit) to time in the same rounds")
    parser.add_argument("--reference-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="with --reference-run: print the reference's operator profile of one extra pass (top ROWS) to stderr")
    args = parser.parse_args()
    args.config = args.config or CONFIGS[args.model]
    args.batch = args.batch or (1 if args.model == "vae" else 2)
    if args.reference_run:
        reference(args)
        return

    prefix = ref.prefix(args)
    size_args = {"unet": ["--size", str(args.size)], "vae": ["--latent-size", str(args.size // 8)], "text": []}[args.model]
    bench_args = ["bench", args.model, "--config", args.config, *size_args, "--batch", str(args.batch),
                  "--dtype", args.dtype, "--repeat", str(args.repeat), "--json"] + (["--no-f32-reference"] if args.no_f32_reference else [])
    ours_cmd = prefix + [args.ldm] + bench_args
    base_cmd = prefix + [args.baseline_ldm] + bench_args if args.baseline_ldm else None
    ref_cmd = prefix + [sys.executable, os.path.abspath(__file__), "--reference-run", "--model", args.model, "--config", args.config,
                        "--size", str(args.size), "--batch", str(args.batch), "--dtype", args.dtype,
                        "--repeat", str(args.repeat)]
    ref_env = ref.reference_env(args)

    ours, theirs, base = [], [], []
    for i in range(args.rounds):
        ours.append(run(ours_cmd))
        theirs.append(run(ref_cmd, ref_env))
        if base_cmd:
            base.append(run(base_cmd))
        print(f"round {i + 1}/{args.rounds}: ours {ours[-1]['seconds']:.3f} s, reference {theirs[-1]['seconds']:.3f} s, "
              f"ratio {ours[-1]['seconds'] / theirs[-1]['seconds']:.2f}"
              + (f", baseline {base[-1]['seconds']:.3f} s" if base else "") + f", load {os.getloadavg()[0]:.1f}", file=sys.stderr)

    summary = ref.summarize(ours, theirs)
    summary.update({
        "model": args.model, "repeat": args.repeat, "dtype": args.dtype, "size": args.size, "batch": args.batch,
        "realtime": args.realtime, "lock": args.lock, "reference": theirs[0]["implementation"], "threads": [ours[0]["threads"], theirs[0]["threads"]],
        "libtorch": ours[0]["libtorch"], "input": ours[0]["input"],
        "ours_peak_rss_mb": max(r["peak_rss_mb"] for r in ours), "reference_peak_rss_mb": max(r["peak_rss_mb"] for r in theirs),
        "ours_output_max_abs": ours[0].get("output_max_abs"), "reference_output_max_abs": theirs[0]["output_max_abs"],
        "ours_parity_max_abs_diff": ours[0].get("parity_max_abs_diff"),
    })
    if base:
        b = ref.summarize(base, theirs)
        summary.update({"baseline_seconds": b["ours_seconds"], "baseline_min": b["ours_min"], "baseline_max": b["ours_max"], "baseline_ratio": b["ratio"]})
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    o, t = [r["seconds"] for r in ours], [r["seconds"] for r in theirs]
    ratios = [a / b for a, b in zip(o, t)]
    print(f"| {args.model}: {ours[0]['input']}, {args.dtype} | seconds (median of rounds, min–max) | peak RSS |")
    print("| --- | ---: | ---: |")
    print(f"| LatentDiffusion.NET (`ldm bench {args.model}`) | {ref.spread(o)} | {summary['ours_peak_rss_mb'] / 1024:.1f} GiB |")
    print(f"| {summary['reference']} | {ref.spread(t)} | {summary['reference_peak_rss_mb'] / 1024:.1f} GiB |")
    print(f"| ours / reference (median of the rounds' ratios) | {ref.spread(ratios)} | |")
    if base:
        b = [r["seconds"] for r in base]
        print(f"| baseline (`{args.baseline_ldm}`) | {ref.spread(b)} |")
        print(f"| baseline / reference | {ref.spread([x / y for x, y in zip(b, t)])} |")
    print()
    print(f"{args.rounds} alternating rounds, each process one warm-up and the median of {args.repeat} runs; "
          f"threads {summary['threads'][0]} / {summary['threads'][1]}; {' '.join(prefix) or 'normal scheduling'}; "
          f"load average at the end {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()

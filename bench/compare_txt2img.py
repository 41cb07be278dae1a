#!/usr/bin/python3
"""Times a whole text-to-image generation here (`ldm bench txt2img --json`) and in diffusers' StableDiffusionPipeline on
PyTorch, on the same weights and the same request, alternately, and prints both with their ratio, their peak memory and
how far apart their outputs are.

    /usr/bin/python3 bench/compare_txt2img.py --pythonpath DIFFUSERS_PATHS [--rounds 3] [--dtype f32|bf16] [--size 512]
        [--steps 20] [--vae-tiling] [--attention-slicing ROWS] [--realtime] [--lock LOCKFILE] [--weights DIR] [--json]

The weights: `ldm bench txt2img --save-model DIR` writes the random N(0, 0.02) SD1.5 pipeline (the U-Net, VAE and text
encoder from configs/models/sd15-*.json) once as a diffusers folder, float32 safetensors, with bench_request.json: the
prompt, seed, guidance 7.5 and the token ids of the prompt and of the empty negative prompt, as our tokenizer gives them
(the embedded model's small vocabulary: the ids are what both sides share; tokenising costs microseconds). Ours then
loads that folder (`--model DIR`, as `ldm generate --model` does); the reference reads the same files with
bench/reference.py's pure-Python safetensors reader (the safetensors package here is a stub).

The reference: diffusers 0.30.x StableDiffusionPipeline with text_encoder=None and tokenizer=None, given prompt_embeds and
negative_prompt_embeds computed, inside the timed span, by bench/reference.py's pure-torch CLIPTextModel (transformers'
eager attention; transformers is not installed here): prompt and negative prompt each a batch of 1, as diffusers'
encode_prompt runs them. The scheduler: the saved scheduler_config.json (PNDMScheduler, skip_prk_steps, steps_offset 1:
SD1.5's), loaded by diffusers' own class on that side. The initial latents are drawn as ours draws them: float32 randn from
a CPU generator seeded with the request's seed, then converted to the compute dtype, and passed as `latents`. With bf16 the
U-Net and the text encoder run in bf16 and the VAE stays float32 on both sides (ours keeps a VAE whose config asks
force_upcast, the default, in float32; the reference casts the latents to the VAE's dtype before decoding). VAE tiling:
diffusers' enable_vae_tiling() against our PipelineOptions.VaeTiling, the same tile sizes and blending.

Each round runs ours, then the reference, each in a new process (each under the lock, when given, so that other users
of the machine measure between them); the outputs (final latents and the image in [0, 1]) are written to safetensors
files (the image [1, H, W, 3], as ours writes it) and compared after the rounds: max |Δ| of the latents and of the image, and of the image in 8 bits.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from compare import ROOT, run  # bench/compare.py: runs a command in the checkout, parses its JSON
import reference as ref  # bench/reference.py: the process prefix, the summary, safetensors, the pure-torch CLIP


def reference(args):
    """The child process: diffusers' pipeline on the saved weights, one timed generation; prints JSON."""
    import torch
    ref.setup_threads()
    # diffusers' StableDiffusionPipeline module imports transformers' CLIP and safety-checker classes by name, and diffusers
    # exports only a placeholder that refuses to run when transformers is missing. With text_encoder, tokenizer,
    # safety_checker and feature_extractor None none of those classes is used: a stand-in package (each name an empty
    # class) in a temporary folder lets the module import. The text encoder is bench/reference.py's CLIP.
    shim = tempfile.mkdtemp(prefix="ld-transformers-shim-")
    os.makedirs(os.path.join(shim, "transformers"))
    with open(os.path.join(shim, "transformers", "__init__.py"), "w") as f:
        f.write("__version__ = '4.44.2'\n\ndef __getattr__(name):\n    return type(name, (), {})\n")
    with open(os.path.join(shim, "transformers", "utils.py"), "w") as f:  # file-name constants
        f.write("def __getattr__(name):\n    return name\n")
    os.makedirs(os.path.join(shim, "transformers-4.44.2.dist-info"))
    with open(os.path.join(shim, "transformers-4.44.2.dist-info", "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: transformers\nVersion: 4.44.2\n")
    sys.path.append(shim)
    import safetensors
    if not hasattr(safetensors, "safe_open"):  # the stub package: imported by the loaders, never called here
        safetensors.safe_open = lambda *a, **k: sys.exit("the safetensors stub cannot read files: bench/reference.py reads the weights")
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
    shutil.rmtree(shim)  # imported: the stand-in is no longer read

    def config(part, name="config.json"):
        with open(os.path.join(args.weights, part, name)) as f:
            return {k: v for k, v in json.load(f).items() if not k.startswith("_") or k == "_class_name"}

    with open(os.path.join(args.weights, "bench_request.json")) as f:
        request = json.load(f)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with torch.no_grad():
        unet = UNet2DConditionModel.from_config(config("unet")).eval()
        ref.load_weights(unet, os.path.join(args.weights, "unet", "diffusion_pytorch_model.safetensors"))
        vae = AutoencoderKL.from_config(config("vae")).eval()
        ref.load_weights(vae, os.path.join(args.weights, "vae", "diffusion_pytorch_model.safetensors"))
        clip = ref.clip_text_model(config("text_encoder")).eval()
        ref.load_weights(clip, os.path.join(args.weights, "text_encoder", "model.safetensors"), ignore={"text_model.embeddings.position_ids"})
    scheduler_config = config("scheduler", "scheduler_config.json")
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    unet.to(dtype)
    clip.to(dtype)
    if dtype != torch.float32:
        # As ours: the VAE (force_upcast) stays float32 and decodes the latents converted to its dtype.
        decode = vae.decode
        vae.decode = lambda z, *a, **k: decode(z.to(vae.dtype), *a, **k)
    if args.vae_tiling:
        pipe.enable_vae_tiling()
    if args.attention_slicing:
        # diffusers' AttnProcessor on PyTorch 1.13 (no fused attention) holds [batch · heads, N, N] scores: at 1024² that
        # is 2 · 8 · 16384² floats (17 GB, and as much again for the softmax), which a 24 GB machine cannot hold; slicing
        # computes them for this many batch · head rows at a time (ours computes attention in 4 MB blocks).
        pipe.enable_attention_slicing(args.attention_slicing)
    latent = args.size // 8
    noise = torch.randn(1, unet.config.in_channels, latent, latent, generator=torch.Generator().manual_seed(request["seed"]), dtype=torch.float32)
    final = {}

    def keep_latents(pipeline, step, timestep, kwargs):
        final["latents"] = kwargs["latents"]
        return kwargs

    load_peak = ref.peak_rss_mb()
    ref.reset_peak_rss()
    start = time.perf_counter()
    with torch.no_grad():
        embeds = clip(torch.tensor([request["input_ids"]]))[0]
        negative = clip(torch.tensor([request["negative_input_ids"]]))[0]
        image = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, height=args.size, width=args.size,
                     num_inference_steps=args.steps, guidance_scale=request["guidance_scale"], latents=noise.to(dtype),
                     output_type="pt", callback_on_step_end=keep_latents).images
    seconds = time.perf_counter() - start
    generation_peak = ref.peak_rss_mb()
    if args.save_output:
        ref.write_safetensors(args.save_output, {"latents": final["latents"].float(), "image": image.float().permute(0, 2, 3, 1)})
    print(json.dumps({
        "seconds": seconds,
        "peak_rss_mb": max(load_peak, generation_peak),
        "generation_peak_rss_mb": generation_peak,
        "latents_max_abs": final["latents"].float().abs().max().item(),
        "implementation": f"diffusers {diffusers.__version__} StableDiffusionPipeline ({type(next(iter(unet.attn_processors.values()))).__name__}), "
                          f"PyTorch {torch.__version__}",
        "scheduler": type(scheduler).__name__,
        "threads": torch.get_num_threads(),
    }))


def compare_outputs(ours, theirs):
    """max |Δ| of the latents, of the image in [0, 1], and of the image in 8 bits (round(255 · x))."""
    a = dict(ref.read_safetensors(ours))
    b = dict(ref.read_safetensors(theirs))
    quantized = ((a["image"] * 255).round() - (b["image"] * 255).round()).abs().max().item()
    return {"latents_max_abs_diff": (a["latents"] - b["latents"]).abs().max().item(),
            "image_max_abs_diff": (a["image"] - b["image"]).abs().max().item(), "image_8bit_max_diff": int(quantized)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ref.add_common_arguments(parser)
    parser.add_argument("--size", type=int, default=512, help="image size in pixels")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--vae-tiling", action="store_true", help="decode in tiles on both sides (diffusers' enable_vae_tiling)")
    parser.add_argument("--attention-slicing", type=int, default=0, metavar="ROWS",
                        help="the reference: diffusers' enable_attention_slicing(ROWS) (what 1024² needs to fit in memory on PyTorch 1.13)")
    parser.add_argument("--weights", default=os.path.join(tempfile.gettempdir(), "ld-bench-sd15-random"),
                        help="the saved random-weight pipeline (written by `ldm bench txt2img --save-model` when absent)")
    parser.add_argument("--ldm", default=os.path.join(ROOT, "ldm"), help="the ldm to time (default: this checkout's ./ldm)")
    parser.add_argument("--reference-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--save-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_run:
        reference(args)
        return

    if not os.path.exists(os.path.join(args.weights, "bench_request.json")):
        print(f"writing the random-weight pipeline to {args.weights} (untimed)", file=sys.stderr)
        run([args.ldm, "bench", "txt2img", "--save-model", args.weights, "--json"])
    prefix = ref.prefix(args)
    common = ["--size", str(args.size), "--steps", str(args.steps), "--dtype", args.dtype] + (["--vae-tiling"] if args.vae_tiling else [])
    slicing = ["--attention-slicing", str(args.attention_slicing)] if args.attention_slicing else []
    out = tempfile.mkdtemp(prefix="ld-compare-txt2img-")
    ref_env = ref.reference_env(args)
    ours, theirs, diffs = [], [], []
    try:
        for i in range(args.rounds):
            mine, yours = os.path.join(out, f"ours{i}.safetensors"), os.path.join(out, f"reference{i}.safetensors")
            ours.append(run(prefix + [args.ldm, "bench", "txt2img", "--model", args.weights, *common, "--save-output", mine, "--json"]))
            print(f"round {i + 1}/{args.rounds}: ours {json.dumps(ours[-1])}", file=sys.stderr, flush=True)
            theirs.append(run(prefix + [sys.executable, os.path.abspath(__file__), "--reference-run", "--weights", args.weights, *common, *slicing,
                                        "--save-output", yours], ref_env))
            diffs.append(compare_outputs(mine, yours))
            print(f"round {i + 1}/{args.rounds}: ours {ours[-1]['seconds']:.1f} s ({ours[-1]['peak_rss_mb']:.0f} MB), "
                  f"reference {theirs[-1]['seconds']:.1f} s ({theirs[-1]['peak_rss_mb']:.0f} MB), "
                  f"ratio {ours[-1]['seconds'] / theirs[-1]['seconds']:.2f}, {diffs[-1]}, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
            for f in (mine, yours):
                os.remove(f)
    finally:
        shutil.rmtree(out)  # the outputs of a round a failure cut short too

    summary = ref.summarize(ours, theirs)
    summary.update({
        "size": args.size, "steps": args.steps, "dtype": args.dtype, "vae_tiling": args.vae_tiling, "reference_attention_slicing": args.attention_slicing, "scheduler": [ours[0]["scheduler"], theirs[0]["scheduler"]],
        "realtime": args.realtime, "lock": args.lock, "reference": theirs[0]["implementation"], "threads": [ours[0]["threads"], theirs[0]["threads"]],
        "ours_peak_rss_mb": [r["peak_rss_mb"] for r in ours], "reference_peak_rss_mb": [r["peak_rss_mb"] for r in theirs],
        "ours_generation_peak_rss_mb": [r["generation_peak_rss_mb"] for r in ours],
        "reference_generation_peak_rss_mb": [r["generation_peak_rss_mb"] for r in theirs],
        "latents_max_abs": [ours[0]["latents_max_abs"], theirs[0]["latents_max_abs"]],
        "latents_max_abs_diff": max(d["latents_max_abs_diff"] for d in diffs), "image_max_abs_diff": max(d["image_max_abs_diff"] for d in diffs),
        "image_8bit_max_diff": max(d["image_8bit_max_diff"] for d in diffs),
    })
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    o, t = [r["seconds"] for r in ours], [r["seconds"] for r in theirs]
    print(f"| txt2img {args.size}², {args.steps} steps ({ours[0]['scheduler']}), CFG 7.5, batch 1, {args.dtype}"
          f"{', VAE tiling' if args.vae_tiling else ''}{f', reference attention slicing {args.attention_slicing}' if args.attention_slicing else ''} | seconds (median of rounds, min–max) | peak RSS (MB) | of which the generation |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| LatentDiffusion.NET (`ldm bench txt2img`) | {ref.spread(o, '{:.1f}')} | {max(summary['ours_peak_rss_mb']):,.0f} | "
          f"{max(summary['ours_generation_peak_rss_mb']):,.0f} |")
    print(f"| {summary['reference']} | {ref.spread(t, '{:.1f}')} | {max(summary['reference_peak_rss_mb']):,.0f} | "
          f"{max(summary['reference_generation_peak_rss_mb']):,.0f} |")
    print(f"| ours / reference (median of the rounds' ratios) | {ref.spread([a / b for a, b in zip(o, t)])} | | |")
    print()
    print(f"{args.rounds} alternating rounds, one generation per process; {' '.join(prefix) or 'normal scheduling'}; "
          f"outputs: latents max |Δ| {summary['latents_max_abs_diff']:.2e} (max |x| {summary['latents_max_abs'][0]:.2f}), "
          f"image max |Δ| {summary['image_max_abs_diff']:.2e}, {summary['image_8bit_max_diff']} in 8 bits; "
          f"load average at the end {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()

"""What the bench/compare_*.py scripts share: how a timed process is started (the lock, realtime scheduling), the
round summary, and the reference side's pieces that the diffusers environment here lacks: a pure-Python safetensors
reader and writer (the format: an 8-byte little-endian header length, a JSON header, the raw bytes), a pure-torch CLIP
text model with transformers' CLIPTextModel weight names and eager-attention math (transformers is not installed),
the peak resident set of the process, and the reference's thread setup.
"""

import json
import math
import os
import statistics
import struct

from compare import run  # bench/compare.py: runs a command in the checkout, parses its JSON

DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "I64": "int64", "I32": "int32", "F64": "float64"}


def prefix(args):
    """The command prefix of one timed process: `flock LOCK` (one timed process at a time across the machine's users,
    taken per process so that others can measure between ours) and `chrt -f 1` (it owns the cores) as asked."""
    p = ["flock", args.lock] if getattr(args, "lock", None) else []
    return p + (["chrt", "-f", "1"] if args.realtime else [])


def add_common_arguments(parser):
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    parser.add_argument("--realtime", action="store_true", help="run each timed process under chrt -f 1 (root)")
    parser.add_argument("--lock", help="run each timed process under `flock LOCK` (LOCKFILE: any file that every timed process shares)")
    parser.add_argument("--pythonpath", help="prepended to PYTHONPATH for the reference (where diffusers is)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def reference_env(args):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in [args.pythonpath, os.environ.get("PYTHONPATH")] if p)
    return env


def spread(values, fmt="{:.2f}"):
    """'median (min–max)' of a list of numbers."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def summarize(ours, theirs, key="seconds"):
    """The median over the rounds, min and max of each side, and the median of the per-round ratios ours / reference."""
    o = [r[key] for r in ours]
    t = [r[key] for r in theirs]
    ratios = [a / b for a, b in zip(o, t)]
    return {
        "ours_seconds": statistics.median(o), "ours_min": min(o), "ours_max": max(o),
        "reference_seconds": statistics.median(t), "reference_min": min(t), "reference_max": max(t),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "rounds": len(o),
    }


# ---- the reference process's side (imports torch lazily: the parent script needs no torch) ----

def setup_threads():
    import torch
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count())


def peak_rss_mb():
    """VmHWM of /proc/self/status in MB (what `ldm bench` reports), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_peak_rss():
    """Resets VmHWM to the current resident set (Linux ≥ 4.0), as `ldm bench txt2img` does before the generation."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def read_safetensors(path):
    """Yields (name, tensor) of a .safetensors file, one tensor at a time (each read into its own buffer)."""
    import torch
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        base = 8 + length
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = getattr(torch, DTYPES[info["dtype"]])
            start, end = info["data_offsets"]
            count = math.prod(info["shape"])
            if count == 0:
                yield name, torch.empty(info["shape"], dtype=dtype)
                continue
            f.seek(base + start)
            data = bytearray(f.read(end - start))
            if len(data) != end - start:
                raise ValueError(f"{path}: {name} is truncated")
            yield name, torch.frombuffer(data, dtype=dtype).reshape(info["shape"])


def write_safetensors(path, tensors):
    """Writes {name: tensor} (contiguous CPU tensors of the dtypes above) as a .safetensors file."""
    import torch
    names = {v: k for k, v in DTYPES.items()}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": names[str(t.dtype).replace("torch.", "")], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


def load_weights(model, path, ignore=()):
    """Copies every tensor of a .safetensors file into the module's parameter or buffer of that name (as diffusers'
    load_state_dict would), one at a time; missing or unexpected names are an error."""
    import torch
    state = model.state_dict()
    seen = set()
    with torch.no_grad():
        for name, tensor in read_safetensors(path):
            if name in ignore:
                continue
            if name not in state:
                raise KeyError(f"{path}: unexpected tensor {name}")
            if state[name].shape != tensor.shape:
                raise ValueError(f"{path}: {name} has shape {list(tensor.shape)}, the model {list(state[name].shape)}")
            state[name].copy_(tensor)
            seen.add(name)
    missing = set(state) - seen
    if missing:
        raise KeyError(f"{path}: missing {sorted(missing)[:5]}")


def clip_text_model(config):
    """transformers' CLIPTextModel (eager attention, the causal mask only, as Stable Diffusion calls it) in plain torch:
    the same parameter names and the same operations in the same order, so a transformers state dict loads into it."""
    import torch
    from torch import nn

    act = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": nn.functional.gelu}[config.get("hidden_act", "quick_gelu")]
    width, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = width // heads
    eps = config.get("layer_norm_eps", 1e-5)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = head_dim ** -0.5
            self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(width, width) for _ in range(4))

        def shape(self, t, n, b):
            return t.view(b, n, heads, head_dim).transpose(1, 2).contiguous()

        def forward(self, h, causal):
            b, n, _ = h.shape
            q = self.shape(self.q_proj(h) * self.scale, n, b).view(b * heads, -1, head_dim)
            k = self.shape(self.k_proj(h), -1, b).view(b * heads, -1, head_dim)
            v = self.shape(self.v_proj(h), -1, b).view(b * heads, -1, head_dim)
            w = torch.bmm(q, k.transpose(1, 2))
            w = (w.view(b, heads, n, n) + causal).view(b * heads, n, n)
            w = nn.functional.softmax(w, dim=-1)
            out = torch.bmm(w, v).view(b, heads, n, head_dim).transpose(1, 2).reshape(b, n, width)
            return self.out_proj(out)

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(width, config["intermediate_size"])
            self.fc2 = nn.Linear(config["intermediate_size"], width)

        def forward(self, h):
            return self.fc2(act(self.fc1(h)))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = Attention()
            self.layer_norm1 = nn.LayerNorm(width, eps=eps)
            self.mlp = Mlp()
            self.layer_norm2 = nn.LayerNorm(width, eps=eps)

        def forward(self, h, causal):
            h = h + self.self_attn(self.layer_norm1(h), causal)
            return h + self.mlp(self.layer_norm2(h))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Layer() for _ in range(config["num_hidden_layers"]))

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(config["vocab_size"], width)
            self.position_embedding = nn.Embedding(config["max_position_embeddings"], width)

    class TextTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()
            self.final_layer_norm = nn.LayerNorm(width, eps=eps)

    class ClipTextModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.text_model = TextTransformer()

        @property
        def dtype(self):
            return next(self.parameters()).dtype

        def forward(self, ids):
            """(last_hidden_state, pooler_output) of token ids [batch, length]."""
            m = self.text_model
            n = ids.shape[-1]
            h = m.embeddings.token_embedding(ids) + m.embeddings.position_embedding(torch.arange(n).unsqueeze(0))
            # transformers' _create_4d_causal_attention_mask: the dtype's minimum above the diagonal.
            causal = torch.full((n, n), torch.finfo(h.dtype).min, dtype=h.dtype).triu(1)[None, None]
            for layer in m.encoder.layers:
                h = layer(h, causal)
            h = m.final_layer_norm(h)
            eos = config.get("eos_token_id", 2)
            # transformers: the legacy eos_token_id 2 pools at the highest id (the end-of-text token of CLIP's vocabulary).
            at = ids.to(torch.int).argmax(-1) if eos == 2 else (ids.to(torch.int) == eos).int().argmax(-1)
            return h, h[torch.arange(h.shape[0]), at]

    return ClipTextModel()

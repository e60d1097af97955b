"""The PyTorch twin of the book's reference model, for the speed comparison.

Not run in CI. `compare.sh` runs it in a local virtual environment:

    python torch_reference.py check WEIGHTS      # our logits == PyTorch's, same weights and ids
    python torch_reference.py time --out JSON    # PyTorch's training and decoding tokens/s

The model is the library's `DecoderOnly` with `Config::tiny()` (or the shape given on the command
line): learned positions, pre-LayerNorm blocks with a fused QKV projection, tanh-GELU MLP, a final
LayerNorm and an untied head; trained with mean cross-entropy, AdamW (betas 0.9/0.95, eps 1e-8,
weight decay 0.01 on matrices only), global-norm clipping at 1.0 and a warm-up/cosine schedule.
"""

import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

PREFIX = "gpt"


class Config:
    def __init__(self, vocab=512, d_model=128, heads=4, layers=2, seq=64):
        self.vocab, self.d_model, self.heads, self.layers, self.seq = vocab, d_model, heads, layers, seq
        self.d_ff = 4 * d_model


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c.d_model
        self.heads = c.heads
        self.ln_attn = torch.nn.LayerNorm(d, eps=1e-5)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.out = torch.nn.Linear(d, d)
        self.ln_mlp = torch.nn.LayerNorm(d, eps=1e-5)
        self.up = torch.nn.Linear(d, c.d_ff)
        self.down = torch.nn.Linear(c.d_ff, d)

    def attend(self, x, cache=None):
        b, t, d = x.shape
        h = self.heads
        hd = d // h
        qkv = self.qkv(x).view(b, t, 3 * h, hd).transpose(1, 2)
        q, k, v = qkv[:, :h], qkv[:, h : 2 * h], qkv[:, 2 * h :]
        offset = 0
        if cache is not None:
            if "k" in cache:
                offset = cache["k"].shape[2]
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        t_k = k.shape[2]
        if t > 1 or offset == 0:
            i = torch.arange(t).unsqueeze(1) + offset
            j = torch.arange(t_k).unsqueeze(0)
            scores = scores.masked_fill(j > i, float("-inf"))
        y = torch.softmax(scores, -1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x, cache=None):
        x = x + self.attend(self.ln_attn(x), cache)
        return x + self.down(F.gelu(self.up(self.ln_mlp(x)), approximate="tanh"))


class Gpt(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.tokens = torch.nn.Parameter(torch.randn(c.vocab, c.d_model) * 0.02)
        self.positions = torch.nn.Parameter(torch.randn(c.seq, c.d_model) * 0.02)
        self.blocks = torch.nn.ModuleList([Block(c) for _ in range(c.layers)])
        self.ln_final = torch.nn.LayerNorm(c.d_model, eps=1e-5)
        self.head = torch.nn.Linear(c.d_model, c.vocab, bias=False)

    def forward(self, ids, caches=None):
        offset = 0 if caches is None or "k" not in caches[0] else caches[0]["k"].shape[2]
        x = self.tokens[ids] + self.positions[offset : offset + ids.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.head(self.ln_final(x))

    def load_ours(self, path):
        """Copy the weights that `ParamStore::save` wrote (names as in the Rust library)."""
        w = load_file(path)
        names = {
            "emb.tokens": self.tokens,
            "emb.positions": self.positions,
            "ln_final.gain": self.ln_final.weight,
            "ln_final.bias": self.ln_final.bias,
            "head.weight": self.head.weight,
        }
        for i, b in enumerate(self.blocks):
            # Each module of a block under our name, and what we call its weight
            # (a LayerNorm's is its gain); every one has a bias too.
            for ours, module, weight in [
                ("ln_attn", b.ln_attn, "gain"),
                ("attn.qkv", b.qkv, "weight"),
                ("attn.out", b.out, "weight"),
                ("ln_mlp", b.ln_mlp, "gain"),
                ("mlp.up", b.up, "weight"),
                ("mlp.down", b.down, "weight"),
            ]:
                p = f"blocks.{i}.{ours}."
                names[p + weight] = module.weight
                names[p + "bias"] = module.bias
        expected = {f"{PREFIX}.{n}" for n in names}
        if set(w) != expected:
            raise SystemExit(f"weights differ: missing {expected - set(w)}, extra {set(w) - expected}")
        with torch.no_grad():
            for n, p in names.items():
                t = w[f"{PREFIX}.{n}"]
                if t.shape != p.shape:
                    raise SystemExit(f"{n}: shape {tuple(t.shape)}, expected {tuple(p.shape)}")
                p.copy_(t)


def lr_at(step, steps, lr=1e-3, warmup=2, min_ratio=0.1):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min((step - warmup) / max(steps - warmup, 1), 1.0)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def optimizer(model, lr=1e-3):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def time_training(c, batch, steps, warmup):
    torch.manual_seed(0)
    model = Gpt(c)
    opt = optimizer(model)
    gen = torch.Generator().manual_seed(0)
    total = steps + warmup
    losses = []
    start = None
    for step in range(total):
        if step == warmup:
            start = time.perf_counter()
        data = torch.randint(0, c.vocab, (batch, c.seq + 1), generator=gen)
        x, y = data[:, :-1], data[:, 1:]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, c.vocab), y.reshape(-1))
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    secs = time.perf_counter() - start
    return {
        "tokens_per_s": steps * batch * c.seq / secs,
        "step_ms": 1e3 * secs / steps,
        "steps": steps,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


@torch.inference_mode()
def time_decoding(c, batch, prompt, reps):
    torch.manual_seed(0)
    model = Gpt(c).eval()
    gen = torch.Generator().manual_seed(1)
    new_tokens = c.seq - prompt

    def generate(ids):
        caches = [{} for _ in model.blocks]
        inp = ids
        for _ in range(new_tokens):
            logits = model(inp, caches)
            inp = logits[:, -1].argmax(-1, keepdim=True)

    prompts = [torch.randint(0, c.vocab, (batch, prompt), generator=gen) for _ in range(reps + 1)]
    generate(prompts[0])
    start = time.perf_counter()
    for p in prompts[1:]:
        generate(p)
    secs = time.perf_counter() - start
    return {"tokens_per_s": reps * batch * new_tokens / secs, "batch": batch, "prompt": prompt,
            "new_tokens": new_tokens, "reps": reps}


def cpu_name():
    """The first `model name` of /proc/cpuinfo, as the Rust side reads it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def peak_gflops(matmul, a, b, reps=20):
    """GFLOP/s of the best of `reps` products of two 512 x 512 f32 matrices."""
    matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * 512**3 / best / 1e9


def peaks():
    """numpy's and PyTorch's 512^3 f32 product on this machine (numpy's BLAS takes its
    thread count from OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, set by compare.sh)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((512, 512), dtype=np.float32) for _ in range(2))
    numpy = peak_gflops(np.matmul, a, b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return numpy, peak_gflops(torch.mm, ta, tb)


def check(args, c):
    model = Gpt(c)
    model.load_ours(args.weights)
    ref = load_file(args.weights + ".check.safetensors")
    with torch.no_grad():
        logits = model(ref["ids"])
        loss = F.cross_entropy(logits.reshape(-1, c.vocab), ref["targets"].reshape(-1))
    diff = (logits - ref["logits"]).abs().max().item()
    loss_diff = abs(loss.item() - ref["loss"].item())
    print(f"logits: max |ours - PyTorch| = {diff:.3g} over {logits.numel()} values; "
          f"loss {ref['loss'].item():.6f} vs {loss.item():.6f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"max_abs_diff": diff, "values": logits.numel(), "tolerance": 1e-5,
                       "loss_ours": ref["loss"].item(), "loss_torch": loss.item()}, f, indent=2)
    if not diff <= 1e-5:
        raise SystemExit(f"logits differ by {diff:.3g} (> 1e-5)")
    print("logits equal within 1e-5: OK")


def time_cmd(args, c):
    torch.set_num_threads(args.threads)
    numpy_peak, torch_peak = peaks()
    run = {"train": time_training(c, args.batch, args.steps, args.warmup),
           "decode": time_decoding(c, args.decode_batch, args.prompt, args.decode_reps),
           "numpy_peak_gflops": numpy_peak, "torch_peak_gflops": torch_peak}
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"train {run['train']['tokens_per_s']:.0f} tokens/s ({run['train']['step_ms']:.1f} ms/step), "
          f"decode {run['decode']['tokens_per_s']:.0f} tokens/s; "
          f"512^3 f32 product: numpy {numpy_peak:.0f} GFLOP/s, PyTorch {torch_peak:.0f} GFLOP/s")
    runs = []
    if args.append and os.path.exists(args.out):
        with open(args.out) as f:
            runs = json.load(f).get("runs", [])
    runs.append(run)
    # Other processes only ever slow a run down: the best of several runs is the estimate.
    best = lambda key: max((r[key] for r in runs), key=lambda x: x["tokens_per_s"])  # noqa: E731
    out = {
        "cpu": cpu_name(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "train": best("train"),
        "decode": best("decode"),
        "numpy_peak_gflops": max(r.get("numpy_peak_gflops", 0.0) for r in runs),
        "torch_peak_gflops": max(r.get("torch_peak_gflops", 0.0) for r in runs),
        "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--seq", type=int, default=64)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="compare our logits with PyTorch's for the same weights")
    c.add_argument("weights")
    c.add_argument("--out", help="write the result here as JSON")
    t = sub.add_parser("time", help="time PyTorch's training and cached decoding")
    t.add_argument("--out", required=True)
    t.add_argument("--append", action="store_true", help="average with the runs already in --out")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--steps", type=int, default=40)
    t.add_argument("--warmup", type=int, default=5)
    t.add_argument("--decode-batch", type=int, default=1)
    t.add_argument("--prompt", type=int, default=8)
    t.add_argument("--decode-reps", type=int, default=20)
    args = p.parse_args()
    cfg = Config(args.vocab, args.d_model, args.heads, args.layers, args.seq)
    if args.cmd == "check":
        torch.set_num_threads(2)
        check(args, cfg)
    else:
        time_cmd(args, cfg)


if __name__ == "__main__":
    main()

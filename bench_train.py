"""
bench_train.py — how fast does train.py train here, and how close is that to what the hardware can do?

    python bench_train.py                        # ~5 min on 2 cores: the matmul ceiling, then 4 runs
    python bench_train.py --compile              # + each run with compile_model=True (~3 min more)
    python bench_train.py --steps 60 --dtypes float32
    python bench_train.py --nanogpt ~/nanoGPT         # + nanoGPT's own train.py at its shape, in this run

A GPU has a published peak (common.PEAK_FLOPS), so train.py logs MFU there. A CPU has none we can look
up, so this script measures one: the FLOP/s of a large matmul in each dtype, on the threads torch uses.
Then it runs `python train.py` itself, in a fresh process as a user would, at two shapes, and the same
model in a bare loop (random tokens, forward, backward, clip, AdamW: nothing else), and reports

    model FLOP/s = tokens/s x model.flops_per_token()        (6N + 12 L C T, the PaLM / nanoGPT count)
    "CPU MFU"    = model FLOP/s / matmul FLOP/s               (both measured in this run: a ratio)
    loop cost    = train.py tokens/s / bare-loop tokens/s    (data, logging, the stability monitor)

Shapes:
- nanogpt: nanoGPT's Shakespeare-char benchmark shape (n_layer=4, n_head=4, n_embd=128, block_size=256,
  batch_size=16) on a byte-level Shakespeare dataset (our BPE with 0 merges: 257 tokens, nanoGPT's
  characters are 65, a 1% difference in FLOPs). SwiGLU at ffn_hidden=344 = 8/3 x 128 (rounded to 8)
  has the parameters of nanoGPT's 4 x 128 GELU MLP; model.py's default would round it up to 512.
  With --nanogpt DIR (a checkout: `git clone https://github.com/karpathy/nanoGPT`), nanoGPT's own train.py
  runs at that shape in this benchmark run, on its character-level Shakespeare (input.txt built from the
  built-in Shakespeare texts, joined in byte order of their file names, split 90/10 as its prepare.py
  does), and every ratio is to that figure. Without it, the ratio is to a figure measured on another
  machine on another date (2026-11-23: 15,200-15,500 tokens/s in fp32), and the table says so.
- tiny: config/tiny.py on data/default, the README's quickstart run.

tokens/s is the median of train.py's log lines after the first (the first holds the first step, where
AdamW allocates its states): the time of forward, backward, clipping and the optimizer step, without
the evaluations and checkpoint saves, which train.py times apart. The bare loop's is the median of
10-step chunks after the first, in this process.
"""
import argparse
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import torch

from model import GPT, GPTConfig
from runs import ROOT, read_metrics
NANOGPT_TOKENS_PER_S = 15_350  # midpoint of 15,200-15,500: nanoGPT 3adf61e, fp32, another machine (2026-11-23)
SHAPES = {
    "nanogpt": dict(dataset="shakespeare_bytes", n_layer=4, n_head=4, n_kv_head=4, n_embd=128, ffn_hidden=344,
                    block_size=256, batch_size=16, learning_rate=1e-3, min_lr=1e-4, warmup_iters=10),
    "tiny": dict(config="config/tiny.py"),
}
DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def matmul_flops(dtype, n=2048, seconds=2.0):
    """FLOP/s of (n, n) @ (n, n) in dtype: 2 n^3 per product, best of repeated timings."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up: thread pool, packing buffers
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def ensure_datasets():
    """data/default (the quickstart's) and data/shakespeare_bytes, built by prepare.py when missing."""
    builds = {"default": [], "shakespeare_bytes": ["--input", "shakespeare", "--vocab-size", "257"]}
    for name, args in builds.items():
        if not (ROOT / "data" / name / "meta.json").is_file():
            print(f"building data/{name} with prepare.py", flush=True)
            subprocess.run([sys.executable, str(ROOT / "prepare.py"), *args, "--out", f"data/{name}"],
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def train_py(shape, dtype, steps, compile_model=False):
    """`python train.py ...` in a fresh process, as a user runs it; its median tokens/s and model config.
    Not runs.train: that pins one thread (right for many small runs side by side, wrong for a speed test).
    compile_model: compile_model=True (the first log line, which holds the compilation, is not counted)."""
    options = dict(SHAPES[shape])
    args = [str(ROOT / options.pop("config"))] if "config" in options else []
    options.update(dtype=dtype, max_iters=steps, log_interval=10, eval_interval=10 ** 6, eval_iters=1,
                   checkpoint_interval=10 ** 6, warmup_iters=options.get("warmup_iters", 10), compile_model=compile_model,
                   out_dir=f"out/bench/{shape}_{dtype}" + ("_compiled" if compile_model else ""))
    args += [f"--{key}={value!r}" for key, value in options.items()]
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"train.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    run = read_metrics(ROOT / options["out_dir"])
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in run["train"][1:])
    ckpt = torch.load(ROOT / options["out_dir"] / f"ckpt_{steps:07d}.pt", map_location="cpu", weights_only=False)
    return tokens_per_s, GPTConfig(**ckpt["model_config"]), ckpt["config"]["batch_size"]


def nanogpt_input_text():
    """nanoGPT's input.txt, offline: the built-in Shakespeare texts joined in byte order of their names."""
    from sources import shakespeare_docs
    docs = sorted(shakespeare_docs(ROOT / "data" / "cache", {}), key=lambda d: d["name"].encode())
    return "\n\n".join(d["text"] for d in docs)


def nanogpt_dataset(folder, text):
    """data/shakespeare_char as nanoGPT's prepare.py writes it: sorted characters -> ids, 90/10 split."""
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    folder.mkdir(parents=True)
    ids[:int(0.9 * len(ids))].tofile(folder / "train.bin")
    ids[int(0.9 * len(ids)):].tofile(folder / "val.bin")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)


def nanogpt_py(checkout, steps):
    """nanoGPT's own train.py at the nanogpt shape, fp32 on the CPU, in a scratch copy (its data/ and
    out_dir stay out of the user's checkout); the median tokens/s of its `iter N: ... time X ms` lines
    after the first five (the first steps warm up its allocator)."""
    checkout = Path(checkout).expanduser()
    if not (checkout / "train.py").is_file() or not (checkout / "configurator.py").is_file():
        raise SystemExit(f"{checkout}: not a nanoGPT checkout (no train.py / configurator.py)")
    shape = SHAPES["nanogpt"]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for name in ("train.py", "model.py", "configurator.py"):
            shutil.copy(checkout / name, scratch / name)
        nanogpt_dataset(scratch / "data" / "shakespeare_char", nanogpt_input_text())
        args = ["--dataset=shakespeare_char", "--device=cpu", "--compile=False", "--dtype=float32",
                f"--n_layer={shape['n_layer']}", f"--n_head={shape['n_head']}", f"--n_embd={shape['n_embd']}",
                f"--block_size={shape['block_size']}", f"--batch_size={shape['batch_size']}", "--dropout=0.0",
                "--gradient_accumulation_steps=1", f"--max_iters={steps}", f"--lr_decay_iters={steps}",
                "--eval_iters=1", "--log_interval=1", f"--eval_interval={steps + 1}", "--always_save_checkpoint=False",
                f"--out_dir={scratch / 'out'}"]
        done = subprocess.run([sys.executable, "train.py", *args], cwd=scratch, capture_output=True, text=True,
                              env={**os.environ, "WANDB_MODE": "disabled"})
    times = [float(m) for m in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", done.stdout, re.M)]
    if done.returncode or len(times) < 10:
        raise SystemExit(f"nanoGPT's train.py failed or logged too few steps:\n{(done.stdout + done.stderr)[-2000:]}")
    return shape["batch_size"] * shape["block_size"] / (statistics.median(times[5:]) / 1000)


def bare_loop(model_config, batch_size, dtype, steps):
    """The same model's steps with nothing around them: random tokens, forward, backward, clip, AdamW.
    train.py's tokens/s over this one is what its loop (data, logging, the monitor) costs."""
    torch.manual_seed(0)
    model = GPT(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    autocast = torch.autocast("cpu", DTYPE[dtype], enabled=dtype != "float32")
    tokens = torch.randint(0, model_config.vocab_size, (batch_size, model_config.block_size + 1))
    chunk_seconds = []
    for _ in range(steps // 10):
        t0 = time.perf_counter()
        for _ in range(10):
            with autocast:
                _, loss = model(tokens[:, :-1], tokens[:, 1:])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        chunk_seconds.append(time.perf_counter() - t0)
    return 10 * batch_size * model_config.block_size / statistics.median(chunk_seconds[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per run (log lines every 10)")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--shapes", default="nanogpt,tiny")
    parser.add_argument("--compile", action="store_true", help="also time train.py with compile_model=True")
    parser.add_argument("--nanogpt", metavar="DIR", help="a nanoGPT checkout: time its train.py in this run too")
    args = parser.parse_args(argv)
    dtypes, shapes = args.dtypes.split(","), args.shapes.split(",")
    ensure_datasets()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ceiling = {dtype: matmul_flops(DTYPE[dtype]) for dtype in dtypes}
    for dtype, flops in ceiling.items():
        print(f"matmul 2048^3 {dtype}: {flops / 1e9:.0f} GFLOP/s")
    peer, peer_note = NANOGPT_TOKENS_PER_S, "nanoGPT: a figure from another machine and date (2026-11-23)"
    if args.nanogpt:
        peer = nanogpt_py(args.nanogpt, args.steps)
        peer_note = f"nanoGPT's train.py measured in this run: {peer:,.0f} tokens/s (fp32)"
    print(peer_note, flush=True)
    rows = []
    for shape in shapes:
        for dtype in dtypes:
            tokens_per_s, model_config, batch_size = train_py(shape, dtype, args.steps)
            bare = bare_loop(model_config, batch_size, dtype, args.steps)
            with torch.device("meta"):
                model = GPT(model_config)  # shapes only: no memory, no init
            compiled = train_py(shape, dtype, args.steps, compile_model=True)[0] if args.compile else None
            rows.append((shape, dtype, model.num_params(), model.flops_per_token(), tokens_per_s, bare, compiled))
            print(f"  {shape} {dtype}: train.py {tokens_per_s:,.0f} tokens/s, bare loop {bare:,.0f}"
                  + (f", compiled {compiled:,.0f}" if compiled else ""), flush=True)
    print("\n| shape | dtype | params | FLOPs/token | train.py tokens/s | bare loop tokens/s | train.py / bare | "
          "model GFLOP/s | matmul GFLOP/s | CPU MFU | vs nanoGPT fp32 | compile_model=True tokens/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape, dtype, params, flops_per_token, tokens_per_s, bare, compiled in rows:
        model_flops = tokens_per_s * flops_per_token
        versus = f"{tokens_per_s / peer:.2f}x" if shape == "nanogpt" else "-"
        print(f"| {shape} | {dtype} | {params / 1e6:.2f}M | {flops_per_token / 1e6:.2f}M | {tokens_per_s:,.0f} | "
              f"{bare:,.0f} | {tokens_per_s / bare:.2f} | {model_flops / 1e9:.0f} | {ceiling[dtype] / 1e9:.0f} | "
              f"{model_flops / ceiling[dtype]:.2f} | {versus} | {f'{compiled:,.0f}' if compiled else '-'} |")


if __name__ == "__main__":
    main()

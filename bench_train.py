"""
bench_train.py — how fast does train.py train here, how close is that to what the hardware can do, and how
good a model does it make in nanoGPT's time?

    python bench_train.py                             # ~6 min on 2 cores: the matmul ceiling, then 8 runs
    python bench_train.py --no-compile --steps 60 --dtypes float32
    python bench_train.py --nanogpt ~/nanoGPT         # + nanoGPT's own train.py at its shape, in this run
    python bench_train.py --nanogpt ~/nanoGPT --quality --shapes nanogpt,tiny   # + bits per byte (~10 min)

A GPU has a published peak (common.PEAK_FLOPS), so train.py logs MFU there. A CPU has none we can look
up, so this script measures one: the FLOP/s of a large matmul in each dtype, on the threads torch uses.
Then it runs `python train.py` itself, in a fresh process as a user would, at two shapes, eagerly and with
compile_model=True, and the same model in a bare loop (random tokens, forward, backward, clip, AdamW:
nothing else, eager), and reports

    model FLOP/s = tokens/s x model.flops_per_token()        (6N + 12 L C T, the PaLM / nanoGPT count)
    "CPU MFU"    = model FLOP/s / matmul FLOP/s               (both measured in this run: a ratio)
    loop cost    = train.py tokens/s / bare-loop tokens/s    (data, logging, the stability monitor)

Shapes:
- nanogpt: nanoGPT's Shakespeare-char benchmark shape (n_layer=4, n_head=4, n_embd=128, block_size=256,
  batch_size=16) on a byte-level Shakespeare dataset (our BPE with 0 merges: 257 tokens, nanoGPT's
  characters are 88 here, a 1% difference in FLOPs). SwiGLU at ffn_hidden=344 = 8/3 x 128 (rounded to 8)
  has the parameters of nanoGPT's 4 x 128 GELU MLP; model.py's default would round it up to 512.
  With --nanogpt DIR (a checkout: `git clone https://github.com/karpathy/nanoGPT`), nanoGPT's own train.py
  runs at that shape in this benchmark run, on its character-level Shakespeare (input.txt built from the
  built-in Shakespeare texts, joined in byte order of their file names, split 90/10 as its prepare.py
  does), and every ratio is to that figure. Without it, the ratio is to a figure measured on another
  machine on another date (2026-11-23: 15,200-15,500 tokens/s in fp32), and the table says so.
- tiny: config/tiny.py on data/default, the README's quickstart run.

--quality: nanoGPT's train.py runs 800 steps (its speed figure then comes from that run) and reports its
val loss at the end; our config/tiny.py (changed by --quality-set KEY=VALUE ...) trains on the same 90%
of input.txt for as many steps as 95% of nanoGPT's wall seconds allow at the tiny shape's measured bf16
tokens/s, and eval.py's scorer gives bits per byte on every token of the last 10%.

tokens/s is the median of train.py's log lines after the first (the first holds the first step, where
AdamW allocates its states and torch.compile compiles): the time of forward, backward, clipping and the
optimizer step, without the evaluations and checkpoint saves, which train.py times apart. The bare loop's
is the median of 10-step chunks after the first, in this process.
"""
import argparse
import math
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

from common import KEEP_FREED, keep_freed_memory
from model import GPT, GPTConfig
from runs import ROOT, read_metrics
from train import get_config
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


def train_args(options, extra=()):
    """train.py's command line: [config file] --key=value ... then the extra --key=value strings as given."""
    options = dict(options)
    args = [str(ROOT / options.pop("config"))] if "config" in options else []
    return args + [f"--{key}={value!r}" for key, value in options.items()] + list(extra)


def run_train_py(options, extra=()):
    """`python train.py [config] --key=value ...` in a fresh process, as a user runs it (not runs.train:
    that pins one thread, right for many small runs side by side, wrong for a speed test). Returns its
    metrics (runs.read_metrics), the process's wall seconds, and its last checkpoint."""
    args = train_args(options, extra)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"train.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    ckpt = torch.load(ROOT / options["out_dir"] / f"ckpt_{options['max_iters']:07d}.pt", map_location="cpu",
                      weights_only=False)
    return read_metrics(ROOT / options["out_dir"]), wall, ckpt


def train_py(shape, dtype, steps, compile_model=False):
    """train.py at a shape: its median tokens/s (the first log line, which holds AdamW's first step and any
    compilation, is not counted), its model config, batch size, and start-up seconds: the process's wall
    minus its steps at that speed (imports, compilation, the final evaluation and checkpoint)."""
    options = dict(SHAPES[shape], dtype=dtype, max_iters=steps, log_interval=10, eval_interval=10 ** 6,
                   eval_iters=1, checkpoint_interval=10 ** 6, compile_model=compile_model,
                   out_dir=f"out/bench/{shape}_{dtype}" + ("_compiled" if compile_model else ""))
    options.setdefault("warmup_iters", 10)
    run, wall, ckpt = run_train_py(options)
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in run["train"][1:])
    model_config, batch_size = GPTConfig(**ckpt["model_config"]), ckpt["config"]["batch_size"]
    startup_s = wall - steps * batch_size * model_config.block_size / tokens_per_s
    return tokens_per_s, model_config, batch_size, startup_s


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


GLIBC_KEEP_FREED = {f"MALLOC_{name}_": str(value) for name, (_, value) in KEEP_FREED.items()}  # keep_freed_memory's


def nanogpt_py(checkout, steps, eval_iters=1, env=None):
    """nanoGPT's own train.py at the nanogpt shape, fp32 on the CPU, in a scratch copy (its data/ and
    out_dir stay out of the user's checkout). Returns its tokens/s (the median of its `iter N: ... time X ms`
    lines after the first five: the first steps warm up its allocator), the wall seconds of the whole
    process, and its val loss (nats per character) at the last step, estimated on eval_iters batches.
    env: extra environment variables (GLIBC_KEEP_FREED gives it train.py's allocator setting)."""
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
                f"--eval_iters={eval_iters}", "--log_interval=1", f"--eval_interval={steps}",
                "--always_save_checkpoint=False", f"--out_dir={scratch / 'out'}"]
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "train.py", *args], cwd=scratch, capture_output=True, text=True,
                              env={**os.environ, "WANDB_MODE": "disabled", **(env or {})})
        wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"nanoGPT's train.py failed:\n{(done.stdout + done.stderr)[-2000:]}")
    step_ms, val_loss = parse_nanogpt_log(done.stdout, steps)
    return shape["batch_size"] * shape["block_size"] / (step_ms / 1000), wall, val_loss


def parse_nanogpt_log(stdout, steps):
    """nanoGPT's log -> (median ms per step after the first five, val loss at `steps` or None). Its lines:
    `iter 10: loss 2.5012, time 131.20ms, mfu -100.00%` and `step 800: train loss 2.2, val loss 2.28`."""
    times = [float(m) for m in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", stdout, re.M)]
    if len(times) < 10:
        raise SystemExit(f"nanoGPT's train.py logged {len(times)} steps, too few to time:\n{stdout[-2000:]}")
    val = re.findall(rf"^step {steps}: train loss [\d.]+, val loss ([\d.]+)", stdout, re.M)
    return statistics.median(times[5:]), float(val[-1]) if val else None


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


# -----------------------------------------------------------------------------
# quality at nanoGPT's wall clock: its 800 steps against whatever our run trains in the same seconds

NANOGPT_QUALITY_STEPS = 800  # 800 x 16 x 256 = 3.28M characters, the comparison
QUALITY = dict(config="config/tiny.py")  # our run for it; --quality-set key=value changes it


def nanogpt_split(folder):
    """nanoGPT's input.txt cut as its prepare.py cuts it: the first 90% of the characters to train on, the
    last 10% to score. The train part becomes pieces of ~256 KB cut at line ends (prepare.py's documents),
    the val part one file for eval.py. Written once: prepare.py's cache keys on the files' mtimes."""
    parts, val_file = folder / "train", folder / "val.txt"
    if val_file.is_file():
        return parts, val_file
    text = nanogpt_input_text()
    train, val = text[:int(0.9 * len(text))], text[int(0.9 * len(text)):]
    parts.mkdir(parents=True, exist_ok=True)
    start = 0
    while start < len(train):
        end = train.find("\n", start + 256_000)
        end = len(train) if end < 0 else end + 1
        (parts / f"part_{start:09d}.txt").write_text(train[start:end])
        start = end
    val_file.write_text(val)
    return parts, val_file


def ours_quality(seconds, tokens_per_s, startup_s, extra):
    """Train on nanoGPT's train split for as many steps as 95% of `seconds` less the measured start-up allow
    at the measured tokens/s, then score every token of its val split with eval.py. -> (steps, wall s, bpb)."""
    from eval import eval_file
    from sample import load_run
    parts, val_file = nanogpt_split(ROOT / "data" / "cache" / "nanogpt_split")
    if not (ROOT / "data" / "nanogpt_split" / "meta.json").is_file():  # no cleaning: the same text as nanoGPT's
        subprocess.run([sys.executable, str(ROOT / "prepare.py"), "--input", f"nanogpt={parts}", "--no-clean",
                        "--no-dedup", "--val-frac", "0.01", "--out", "data/nanogpt_split"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    options = dict(QUALITY, dataset="nanogpt_split", out_dir="out/bench/quality", eval_iters=2, log_interval=10)
    shape = get_config(train_args(options, extra))  # --quality-set may change the batch or the context
    # 5% short of nanoGPT's wall: the quality run's speed drifts from the speed run's (it came out 8 s over)
    steps = int(0.95 * (seconds - startup_s) * tokens_per_s / (shape.batch_size * shape.block_size))
    options.update(max_iters=steps, lr_decay_iters=steps, eval_interval=steps, checkpoint_interval=steps)
    _, wall, _ = run_train_py(options, extra)
    model, enc, _ = load_run(str(ROOT / options["out_dir"]), "cpu")
    return steps, wall, eval_file(model, enc, str(val_file))["bpb"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per run (log lines every 10)")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--shapes", default="nanogpt,tiny")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile_model=True runs")
    parser.add_argument("--nanogpt", metavar="DIR", help="a nanoGPT checkout: time its train.py in this run too")
    parser.add_argument("--quality", action="store_true", help="with --nanogpt: bits per byte at its wall clock")
    parser.add_argument("--quality-set", nargs="*", default=[], metavar="KEY=VALUE", help="our quality run's options")
    args = parser.parse_args(argv)
    if args.quality and not args.nanogpt:
        parser.error("--quality needs --nanogpt DIR: the wall clock to match is nanoGPT's, measured here")
    ensure_datasets()
    keep_freed_memory()  # the bare loop runs in this process: the allocator setting train.py uses on a CPU
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ceiling = {dtype: matmul_flops(DTYPE[dtype]) for dtype in args.dtypes.split(",")}
    for dtype, flops in ceiling.items():
        print(f"matmul 2048^3 {dtype}: {flops / 1e9:.0f} GFLOP/s")
    peer, peer_note, peer_run = NANOGPT_TOKENS_PER_S, "nanoGPT: a figure from another machine and date (2026-11-23)", None
    if args.nanogpt:  # with --quality its 800-step run gives the speed too
        peer_run = nanogpt_py(args.nanogpt, NANOGPT_QUALITY_STEPS if args.quality else args.steps,
                              eval_iters=200 if args.quality else 1)
        peer = peer_run[0]
        peer_note = f"nanoGPT's train.py measured in this run: {peer:,.0f} tokens/s (fp32)"
        # our train.py keeps freed pages mapped (common.keep_freed_memory); what would nanoGPT gain from it?
        kept = nanogpt_py(args.nanogpt, args.steps, env=GLIBC_KEEP_FREED)[0]
        peer_note += (f"; with train.py's allocator setting ({' '.join(f'{k}={v}' for k, v in GLIBC_KEEP_FREED.items())})"
                      f" {kept:,.0f} tokens/s ({kept / peer:.2f}x its own); the ratios below are to its own")
    print(peer_note, flush=True)
    rows = speed_rows(args, ceiling, peer)
    if args.quality:
        quality_report(args, peer_run, rows)


def speed_rows(args, ceiling, peer):
    """train.py eagerly and compiled, and the bare loop, per shape and dtype; printed as a table."""
    rows = []
    for shape in args.shapes.split(","):
        for dtype in args.dtypes.split(","):
            tokens_per_s, model_config, batch_size, startup = train_py(shape, dtype, args.steps)
            bare = bare_loop(model_config, batch_size, dtype, args.steps)
            compiled = compiled_startup = None
            if not args.no_compile:
                compiled, _, _, compiled_startup = train_py(shape, dtype, args.steps, compile_model=True)
            with torch.device("meta"):
                flops_per_token = GPT(model_config).flops_per_token()  # shapes only: no memory, no init
            rows.append(dict(shape=shape, dtype=dtype, eager=tokens_per_s, bare=bare, compiled=compiled,
                             flops_per_token=flops_per_token, startup_s=startup, compiled_startup_s=compiled_startup))
            print(f"  {shape} {dtype}: train.py {tokens_per_s:,.0f} tokens/s, bare loop {bare:,.0f}"
                  + (f", compiled {compiled:,.0f}" if compiled else ""), flush=True)
    print("\n| shape | dtype | FLOPs/token | train.py tokens/s | bare loop | train.py / bare | compiled tokens/s | "
          "matmul GFLOP/s | CPU MFU (best) | vs nanoGPT fp32: eager, compiled |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        best = max(r["eager"], r["compiled"] or 0)
        compiled = f"{r['compiled']:,.0f}" if r["compiled"] else "-"
        versus = f"{r['eager'] / peer:.2f}x, " + (f"{r['compiled'] / peer:.2f}x" if r["compiled"] else "-")
        print(f"| {r['shape']} | {r['dtype']} | {r['flops_per_token'] / 1e6:.2f}M | {r['eager']:,.0f} | "
              f"{r['bare']:,.0f} | {r['eager'] / r['bare']:.2f} | {compiled} | {ceiling[r['dtype']] / 1e9:.0f} | "
              f"{best * r['flops_per_token'] / ceiling[r['dtype']]:.2f} | {versus if r['shape'] == 'nanogpt' else '-'} |")
    return rows


def quality_report(args, peer_run, rows):
    """nanoGPT's 800 steps against our run in the same wall seconds, both scored on the last 10% of its
    input.txt. Our steps come from the tiny shape's fastest measured tokens/s in this run."""
    _, nanogpt_wall, nanogpt_val = peer_run
    val_text = nanogpt_split(ROOT / "data" / "cache" / "nanogpt_split")[1].read_text()
    nanogpt_bpb = nanogpt_val * len(val_text) / len(val_text.encode()) / math.log(2)  # nats/char -> bits/byte
    tiny = [r for r in rows if r["shape"] == "tiny" and r["dtype"] == "bfloat16"]
    if not tiny:
        raise SystemExit("--quality needs the tiny shape in bfloat16 among --shapes/--dtypes (its speed sizes our run)")
    fast = (tiny[0]["compiled"], tiny[0]["compiled_startup_s"]) if (tiny[0]["compiled"] or 0) > tiny[0]["eager"] \
        else (tiny[0]["eager"], tiny[0]["startup_s"])  # config/tiny.py compiles: its compiled speed and start-up
    steps, wall, bpb = ours_quality(nanogpt_wall, *fast, [f"--{item}" for item in args.quality_set])
    print(f"(our steps: 95% of nanoGPT's {nanogpt_wall:.0f} s less {fast[1]:.0f} s of measured start-up, at "
          f"{fast[0]:,.0f} tokens/s)")
    print(f"\n| run | steps | wall s | bits/byte on the last 10% of input.txt |\n|---|---:|---:|---:|\n"
          f"| nanoGPT train.py (fp32, {NANOGPT_QUALITY_STEPS} steps, val estimated on 200 batches) | "
          f"{NANOGPT_QUALITY_STEPS} | {nanogpt_wall:.0f} | {nanogpt_bpb:.3f} |\n"
          f"| ours ({' '.join([QUALITY['config'], *args.quality_set])}, every val token scored) | {steps} | "
          f"{wall:.0f} | {bpb:.3f} |")
    if wall > nanogpt_wall:
        print(f"our run took {wall - nanogpt_wall:.0f} s longer than nanoGPT's: the steps were sized from the "
              f"speed runs above, and this run was slower than they were")


if __name__ == "__main__":
    main()

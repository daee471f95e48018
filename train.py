"""
train.py — pretrain the GPT of model.py on a dataset made by prepare.py.

One process on a CPU or a GPU:
    python train.py                                   # config/tiny.py's run on data/default
    python train.py config/tiny.py --max_iters=200 --dtype=float32
    python train.py config/tiny.py --resume           # continue out_dir's newest intact checkpoint
Several processes with DDP (one per GPU, or CPU processes talking over gloo):
    torchrun --standalone --nproc_per_node=8 train.py config/X.py
    python -m torch.distributed.run --standalone --nproc_per_node=2 train.py config/tiny.py --device=cpu

Config: the globals below are the defaults. Each config file named on the command line is plain Python
executed over them (later files win), then every --key=value (parsed with ast.literal_eval; a bare word
stays a string). An unknown key or a value of the wrong type is an error.

The run directory (out_dir) gets config.json, metrics.jsonl, tokenizer/ (a copy of the dataset's),
ckpt_{step:07d}.pt every checkpoint_interval steps and at the end, best.pt, and events/ (batches that
tripped the stability monitor).
"""
import ast
import builtins
import contextlib
import dataclasses
import difflib
import json
import math
import os
import random
import resource
import shutil
import sys
import textwrap
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from model import GPT, GPTConfig, device_peak_flops, mfu
from parallel import init_distributed, load_sharded, make_optimizer, save_sharded, set_gradient_sync, shutdown, \
    wrap_model
from tokenizer import load_tokenizer

# -----------------------------------------------------------------------------
# default config values: config/tiny.py's run on data/default
# I/O and logging
out_dir = "out/tiny"              # run directory: checkpoints, metrics.jsonl, config.json, tokenizer/
dataset = "default"               # data/NAME, or a path to a dataset directory (contains a '/')
resume = False                    # continue from out_dir's newest intact checkpoint (--resume)
log_interval = 10                 # steps between train lines (each costs one host sync more)
eval_interval = 100               # steps between evaluations of the val bins
eval_iters = 10                   # global batches per val bin per evaluation
checkpoint_interval = 100         # steps between ckpt_*.pt (the last step always saves)
keep_last = 3                     # ckpt_*.pt files kept (best.pt comes on top)
tensorboard = False               # also log to out_dir/tb (if the tensorboard package is installed)
wandb_log = False                 # also log to wandb (if installed; WANDB_MODE=offline works)
wandb_project = "nanopretrain"    # wandb project name
# data and batch
batch_size = 32                   # sequences per micro-batch, per process
block_size = 128                  # tokens per sequence (the model's context length)
gradient_accumulation_steps = 1   # micro-batches per optimizer step, per process (not divided by ranks)
tokens_per_step = 0               # if > 0: derive gradient_accumulation_steps from this global target
# model (GPTConfig fields)
n_layer = 4                       # transformer blocks
n_head = 4                        # query heads
n_kv_head = 4                     # key/value heads (< n_head: grouped-query attention)
n_embd = 128                      # residual stream width
ffn_hidden = 0                    # SwiGLU hidden width (0 = model.py's automatic choice)
tie_embeddings = True             # share the token embedding and the output head
rope_theta = 10000.0              # RoPE base
norm_eps = 1e-6                   # RMSNorm epsilon
kernels = "auto"                  # attention/RMSNorm kernels: "auto" | "triton" | "torch"
activation_checkpointing = False  # recompute each block in backward instead of storing its activations
vocab_size = 0                    # 0 = the dataset's meta.json vocab_size
# optimizer
optimizer = "adamw"               # "adamw" | "sgd"
learning_rate = 3e-3              # peak learning rate
weight_decay = 0.1                # AdamW decay, on matrices only (not on norms' gains)
beta1 = 0.9                       # AdamW first moment
beta2 = 0.95                      # AdamW second moment
momentum = 0.9                    # SGD momentum
grad_clip = 1.0                   # clip the global gradient norm to this (0 = off)
# learning rate schedule
lr_schedule = "cosine"            # "cosine" | "wsd" | "constant" (all after a linear warmup) | "range_test"
warmup_iters = 50                 # steps of linear warmup
lr_decay_iters = 0                # cosine: steps until min_lr; wsd: where the decay ends (0 = max_iters)
min_lr = 3e-4                     # the floor the schedule decays to
decay_frac = 0.2                  # wsd: fraction of lr_decay_iters spent in the final decay
max_iters = 1000                  # optimizer steps in the run
# precision and system
dtype = "bfloat16"                # "float32" | "bfloat16" | "float16" (autocast; fp16 uses a GradScaler)
fp16_no_scaler = False            # unsafe on purpose (the incident lab): float16 without a GradScaler
device = "auto"                   # "auto" (cuda if available) | "cpu" | "cuda" | "cuda:1"
compile = False                   # torch.compile the model
seed = 1337                       # init and data order; the batches depend on (seed, step) only
# stability monitor
spike_policy = "warn"             # "warn" | "skip" (drop the update) | "rollback" (to the last checkpoint)
spike_sigma = 6.0                 # a spike: loss > running mean + spike_sigma * running std
spike_window = 50                 # steps in the running statistics
spike_burnin = 20                 # steps before spikes are judged (the early loss falls too fast)
grad_explosion_factor = 10.0      # an explosion: grad norm > this x the running median
rollback_lr_mult = 0.5            # after a rollback the LR is multiplied by this ...
rollback_lr_steps = 50            # ... for this many steps
max_rollbacks = 5                 # more rollbacks than this: stop with status "diverged"
diverge_patience = 5              # this many NaN or skipped steps in a row: stop with status "diverged"
# fault injection (tests and the incident lab)
inject_bad_batch_step = -1        # poison the batch of this data step (-1 = never)
inject_bad_batch_kind = "random"  # "random" tokens | "constant" (one token repeated)
inject_lr_mult = 1.0              # multiply the LR by this ...
inject_lr_start = 0               # ... from this step ...
inject_lr_steps = 0               # ... for this many steps
inject_slow_save = 0.0            # seconds to sleep between writing a checkpoint and renaming it
# several processes (parallel.py)
zero = 0                          # 1 = ZeRO-1: shard AdamW's states over the ranks
fsdp = False                      # shard weights, grads and optimizer states per block (FSDP2)
cpu_offload = False               # with fsdp: keep the shards in CPU memory
dist_timeout_s = 600              # a collective waiting longer than this fails (a dead or hung rank)
# -----------------------------------------------------------------------------
DEFAULTS = {k: v for k, v in globals().items() if not k.startswith("_") and isinstance(v, (bool, int, float, str))}
MODEL_KEYS = ["block_size", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden",
              "tie_embeddings", "rope_theta", "norm_eps", "kernels", "activation_checkpointing"]


def set_key(config, key, value, where):
    """One override, checked: the key must exist and keep its type (an int is accepted for a float)."""
    if key not in DEFAULTS:
        close = difflib.get_close_matches(key, DEFAULTS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SystemExit(f"{where}: unknown config key '{key}'{hint}")
    want = type(DEFAULTS[key])
    if want is float and type(value) is int:
        value = float(value)
    if type(value) is not want:
        raise SystemExit(f"{where}: {key}={value!r} is a {type(value).__name__}, expected {want.__name__}")
    config[key] = value


def get_config(argv):
    """Defaults <- config files (in order) <- --key=value; returns a namespace of plain values."""
    config = dict(DEFAULTS)
    for arg in argv:
        if arg == "--resume":
            arg = "--resume=True"
        if arg.startswith("--"):
            key, eq, text = arg[2:].partition("=")
            if not eq:
                raise SystemExit(f"command line: '{arg}' should be --key=value")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text  # a bare word such as --dataset=default
            set_key(config, key, value, "command line")
        else:
            if not Path(arg).is_file():
                raise SystemExit(f"{arg}: no such config file")
            scope = dict(config)
            exec(builtins.compile(Path(arg).read_text(), arg, "exec"), scope)  # `compile` is a config key
            for key, value in scope.items():
                if not key.startswith("_") and isinstance(value, (bool, int, float, str)):
                    set_key(config, key, value, arg)
    cfg = SimpleNamespace(**config)
    cfg.lr_decay_iters = cfg.lr_decay_iters or cfg.max_iters
    for key, allowed in [("lr_schedule", ("cosine", "wsd", "constant", "range_test")),
                         ("optimizer", ("adamw", "sgd")), ("dtype", ("float32", "bfloat16", "float16")),
                         ("spike_policy", ("warn", "skip", "rollback")),
                         ("inject_bad_batch_kind", ("random", "constant"))]:
        if getattr(cfg, key) not in allowed:
            raise SystemExit(f"config: {key}={getattr(cfg, key)!r}, expected one of {allowed}")
    return cfg


# -----------------------------------------------------------------------------
# learning rate schedule


def get_lr(step, cfg):
    """The learning rate of optimizer step `step` (0-based)."""
    # 0) the LR range test: no warmup, min_lr growing exponentially to learning_rate at the last step
    if cfg.lr_schedule == "range_test":
        return cfg.min_lr * (cfg.learning_rate / cfg.min_lr) ** (step / max(1, cfg.max_iters - 1))
    # 1) linear warmup from lr/(warmup+1) to lr: the first updates come before AdamW's moments settle
    if step < cfg.warmup_iters:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_iters + 1)
    # 2) after the decay: stay at the floor
    if step >= cfg.lr_decay_iters or cfg.lr_schedule == "constant":
        return cfg.learning_rate if cfg.lr_schedule == "constant" else cfg.min_lr
    if cfg.lr_schedule == "cosine":
        # 3) cosine from lr (end of warmup) to min_lr (lr_decay_iters)
        progress = (step - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
        return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.learning_rate - cfg.min_lr)
    # 4) WSD: flat at lr, then the last decay_frac of the steps fall to min_lr as 1 - sqrt(progress).
    # 1-sqrt drops fast at first and then lingers near the floor; Hägele et al. (2024) found it beats a
    # linear anneal of the same length, and a run can be extended by branching before the decay.
    decay_start = cfg.lr_decay_iters - max(1, round(cfg.decay_frac * cfg.lr_decay_iters))
    if step < decay_start:
        return cfg.learning_rate
    progress = (step - decay_start) / (cfg.lr_decay_iters - decay_start)
    return cfg.min_lr + (1 - math.sqrt(progress)) * (cfg.learning_rate - cfg.min_lr)


# -----------------------------------------------------------------------------
# data: random windows from the uint16 bins
#
# Random, not sequential: the global batch of optimizer step d is rows = batch_size x accumulation x ranks
# windows whose offsets come from a numpy Generator seeded by (seed, 0, d). Micro-step m of rank r takes
# rows [(m * world_size + r) * batch_size, ... + batch_size). Nothing to save but d, so a resumed run draws
# exactly the batches it would have drawn, and 1 rank x 4 rows x 2 micro-steps, 2 ranks x 4 rows x 1,
# and 1 rank x 8 rows x 1 all train on the same 8 windows. The price: windows overlap and repeat, and some
# tokens are never seen in an epoch, which is harmless at our few-epoch scale.
# The memmap is re-opened per batch (as nanoGPT does): a long-lived one keeps every page it touched
# mapped, which inflates the RSS we report as peak memory; opening a mmap costs ~20 us.


def window_starts(n_tokens, block_size, rows, key):
    """(rows,) offsets of windows of block_size + 1 tokens in a bin of n_tokens."""
    return np.random.default_rng(key).integers(0, n_tokens - block_size - 1, size=rows)


def read_windows(path, starts, length):
    data = np.memmap(path, dtype=np.uint16, mode="r")
    return torch.from_numpy(np.stack([data[s:s + length] for s in starts]).astype(np.int64))


def train_rows(cfg, data_dir, data_step, first, count):
    """(count, T + 1) int64 rows first..first+count of data step data_step's global batch, and their offsets."""
    n = len(np.memmap(data_dir / "train.bin", dtype=np.uint16, mode="r"))
    starts = window_starts(n, cfg.block_size, cfg.rows_per_step, [cfg.seed, 0, data_step])[first:first + count]
    xy = read_windows(data_dir / "train.bin", starts, cfg.block_size + 1)
    if data_step == cfg.inject_bad_batch_step:  # fault injection: the whole global batch is poisoned
        rng = np.random.default_rng([cfg.seed, 2, data_step])
        poison = torch.from_numpy(rng.integers(0, cfg.vocab_size, size=(cfg.rows_per_step, cfg.block_size + 1)))
        constant = torch.full_like(xy, int(poison[0, 0]))
        xy = poison[first:first + count] if cfg.inject_bad_batch_kind == "random" else constant
    return xy, starts


def to_device(xy, device):
    """x, y (B, T): inputs and next-token targets. Pinned + non_blocking lets the copy overlap GPU work."""
    if device.type == "cuda":
        xy = xy.pin_memory().to(device, non_blocking=True)
    return xy[:, :-1], xy[:, 1:]


# -----------------------------------------------------------------------------
# checkpoints: written atomically, so a kill at any moment leaves the previous one intact
#
# A checkpoint is out_dir/ckpt_{step:07d}.pt written by rank 0, or with zero/fsdp a directory
# out_dir/ckpt_{step:07d}/ that every rank writes its shards into (parallel.save_sharded). Both hold the
# same metadata: model_config, scaler, step, rng (one state per rank), data_state, monitor, config,
# tokenizer_hash, time_s.


def write_atomic(path, text):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_atomic(obj, path, slow=0.0):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    time.sleep(slow)  # inject_slow_save: a window in which the tests kill -9 us
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    os.fsync(dir_fd)
    os.close(dir_fd)


def rng_states():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ctx, name):
    """out_dir/NAME.pt, or the directory out_dir/NAME when sharded. Every rank calls it."""
    run = ctx.run
    rng = [rng_states()]
    if ctx.world_size > 1:
        rng = [None] * ctx.world_size
        dist.all_gather_object(rng, rng_states())
    extra = {"model_config": dataclasses.asdict(ctx.model_config), "scaler": ctx.scaler.state_dict(),
             "step": run.step, "rng": rng, "config": vars(ctx.cfg), "tokenizer_hash": ctx.tok_hash,
             "data_state": {"data_step": run.data_step, "lr_cut_until": run.lr_cut_until,
                            "rollbacks": run.rollbacks},
             "monitor": {"losses": list(run.losses), "norms": list(run.norms)}, "time_s": elapsed(ctx)}
    if ctx.sharded:
        save_sharded(ctx.out_dir / name, ctx.wrapped, ctx.optimizer, extra)
    elif ctx.rank == 0:
        extra.update(model=ctx.raw.state_dict(), optimizer=ctx.optimizer.state_dict())
        save_atomic(extra, ctx.out_dir / f"{name}.pt", ctx.cfg.inject_slow_save)
    if ctx.world_size > 1:
        dist.barrier()  # nobody reads (a rollback) before the rename


def checkpoints(ctx):
    """This run's complete checkpoints, oldest first (a .tmp left by a kill does not match)."""
    if ctx.sharded:
        return sorted(p for p in ctx.out_dir.glob("ckpt_*") if (p / ".metadata").is_file())
    return sorted(ctx.out_dir.glob("ckpt_*.pt"))


def prune_checkpoints(ctx):
    if ctx.rank == 0:
        for path in checkpoints(ctx)[:-ctx.cfg.keep_last]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def newest_checkpoint(ctx):
    """(path, metadata) of the newest checkpoint that loads, or (None, None); skips broken ones.
    For a .pt file the metadata is the whole checkpoint; for a directory, rank 0's extra."""
    for path in reversed(checkpoints(ctx)):
        try:
            return path, torch.load(path / "extra_rank0.pt" if path.is_dir() else path, map_location="cpu",
                                    weights_only=False)
        except Exception as error:  # a truncated file from a crash before atomic writes, a bad disk
            print(f"{path}: unreadable ({type(error).__name__}), trying an older checkpoint")
    return None, None


def check_compatible(ckpt, model_config, tok_hash, path):
    """Resuming with another model shape or tokenizer is an error, not a silent mess."""
    theirs, ours = ckpt["model_config"], dataclasses.asdict(model_config)
    diff = [f"{k}={theirs.get(k)!r} (now {ours[k]!r})" for k in ours
            if k not in ("activation_checkpointing", "kernels") and theirs.get(k) != ours[k]]
    if diff:
        raise SystemExit(f"{path}: checkpoint model differs from the config: {', '.join(diff)}")
    if ckpt["tokenizer_hash"] != tok_hash:
        raise SystemExit(f"{path}: checkpoint tokenizer hash {ckpt['tokenizer_hash']} != the dataset's "
                         f"{tok_hash}: this run was trained with another tokenizer")


def restore(ctx, path, ckpt):
    """Load model, optimizer, scaler, RNG and the loop's state from a checkpoint (every rank)."""
    check_compatible(ckpt, ctx.model_config, ctx.tok_hash, path)
    if path.is_dir():
        ckpt = load_sharded(path, ctx.wrapped, ctx.optimizer)
    else:
        ctx.raw.load_state_dict(ckpt["model"])
        ctx.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt["scaler"]:
        ctx.scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt["rng"]
    set_rng_states(rng[ctx.rank] if len(rng) == ctx.world_size else rng[0])
    run, data = ctx.run, ckpt["data_state"]
    run.step, run.data_step = ckpt["step"], data["data_step"]
    run.lr_cut_until, run.rollbacks = data["lr_cut_until"], data["rollbacks"]
    run.losses = deque(ckpt["monitor"]["losses"], maxlen=ctx.cfg.spike_window)
    run.norms = deque(ckpt["monitor"]["norms"], maxlen=ctx.cfg.spike_window)
    return ckpt


# -----------------------------------------------------------------------------
# the stability monitor


def check_stability(loss, grad_norm, history, cfg, scaler_on):
    """(anomaly, detail) for one step's loss and pre-clip gradient norm; anomaly is None when healthy.

    history = (losses, norms): deques of the last spike_window HEALTHY steps. An anomaly is not added,
    so one bad step cannot widen the band that judges the next.
    """
    losses, norms = history
    if not math.isfinite(loss) or (not math.isfinite(grad_norm) and not scaler_on):
        return "nan", f"loss {loss}, grad norm {grad_norm}"
    if not math.isfinite(grad_norm):  # fp16: the GradScaler skips this update and lowers its scale itself
        return None, ""
    if len(losses) >= cfg.spike_burnin:
        mean, std, median = float(np.mean(losses)), float(np.std(losses)), float(np.median(norms))
        if loss > mean + cfg.spike_sigma * std:
            return "spike", f"loss {loss:.4f} > mean {mean:.4f} + {cfg.spike_sigma:g} x std {std:.4f}"
        if grad_norm > cfg.grad_explosion_factor * median:
            return "grad_explosion", (f"grad norm {grad_norm:.4g} > {cfg.grad_explosion_factor:g} x "
                                      f"median {median:.4g}")
    losses.append(loss)
    norms.append(grad_norm)
    return None, ""


@torch.no_grad()
def dump_batch(ctx, step, data_step, max_rows=32):
    """The first rows of the global batch that tripped the monitor, worst row first: offset, loss, ids,
    text. Every rank runs the forward (FSDP needs them all), rank 0 writes out_dir/events/."""
    xy, starts = train_rows(ctx.cfg, ctx.data_dir, data_step, 0, min(max_rows, ctx.cfg.rows_per_step))
    x, y = to_device(xy, ctx.device)
    with ctx.autocast:
        logits, _ = ctx.model(x)  # (B, T, vocab)
    row_loss = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").mean(1).tolist()  # (B,)
    if ctx.rank != 0:
        return None
    rows = [{"row": i, "start": int(starts[i]), "loss": row_loss[i], "tokens": xy[i].tolist(),
             "text": ctx.enc.decode([t for t in xy[i].tolist() if t < ctx.enc.n_vocab])}
            for i in sorted(range(len(starts)), key=lambda i: -row_loss[i])]
    path = ctx.out_dir / "events" / f"batch_{step:07d}_data{data_step:07d}.json"
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, json.dumps({"step": step, "data_step": data_step, "rows": rows}, indent=1))
    return str(path)


# -----------------------------------------------------------------------------
# setup: processes, device, dataset, run directory, model, optimizer


def read_dataset(cfg):
    """(data_dir, meta.json, the val bins present) after checking the bins are long enough."""
    data_dir = Path(cfg.dataset) if "/" in cfg.dataset else Path("data") / cfg.dataset
    meta_path = data_dir / "meta.json"
    if not meta_path.is_file():
        raise SystemExit(f"{meta_path}: no such file (build the dataset with `python prepare.py`)")
    meta = json.loads(meta_path.read_text())
    bins = ["train.bin"] + sorted(b for b in meta["bins"] if b.startswith("val") and b.endswith(".bin"))
    for name in bins:
        path = data_dir / name
        if not path.is_file() or path.stat().st_size // 2 <= cfg.block_size + 1:
            raise SystemExit(f"{path}: missing or shorter than block_size + 1 = {cfg.block_size + 1} tokens")
    return data_dir, meta, bins[1:]


def start_run_dir(ctx, tok_dir):
    """Rank 0: a fresh out_dir (an earlier run's outputs removed), the tokenizer copied, config.json."""
    out = ctx.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if not ctx.cfg.resume:
        old = [*out.glob("ckpt_*"), *out.glob("best*"), *out.glob("metrics.jsonl"), out / "events", out / "tb"]
        old = [p for p in old if p.exists()]
        if old:
            print(f"{out}: starting fresh, removing {len(old)} outputs of an earlier run (--resume continues it)")
        for path in old:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for tmp in out.glob("*.tmp"):  # left by a kill during a save
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    shutil.copytree(tok_dir, out / "tokenizer", dirs_exist_ok=True)
    write_atomic(out / "config.json", json.dumps(vars(ctx.cfg), indent=1))


def setup(cfg):
    """Everything the loop needs, in one namespace: ctx."""
    rank, local_rank, world_size = init_distributed(cfg.dist_timeout_s)
    name = cfg.device if cfg.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    if cfg.tokens_per_step:  # accumulate micro-batches until one step sees tokens_per_step tokens
        per_micro = cfg.batch_size * cfg.block_size * world_size
        if cfg.tokens_per_step % per_micro:
            raise SystemExit(f"config: tokens_per_step={cfg.tokens_per_step} is not a multiple of batch_size x "
                             f"block_size x processes = {per_micro}")
        cfg.gradient_accumulation_steps = cfg.tokens_per_step // per_micro
    cfg.world_size, cfg.rows_per_step = world_size, cfg.batch_size * cfg.gradient_accumulation_steps * world_size
    if cfg.fp16_no_scaler and cfg.dtype != "float16":
        raise SystemExit(f"config: fp16_no_scaler=True needs dtype='float16' (dtype is {cfg.dtype!r})")
    data_dir, meta, val_bins = read_dataset(cfg)
    cfg.vocab_size = cfg.vocab_size or meta["vocab_size"]
    if cfg.vocab_size < meta["vocab_size"]:
        raise SystemExit(f"config: vocab_size={cfg.vocab_size} < the dataset's {meta['vocab_size']}")
    tok_dir = data_dir / meta["tokenizer"]
    ctx = SimpleNamespace(cfg=cfg, rank=rank, world_size=world_size, device=device, data_dir=data_dir,
                          meta=meta, val_bins=val_bins, enc=load_tokenizer(tok_dir),
                          tok_hash=meta["tokenizer_hash"], out_dir=Path(cfg.out_dir), t_start=time.time(),
                          time_offset=0.0, sharded=bool(cfg.zero or cfg.fsdp), sinks=[])
    if rank == 0:
        start_run_dir(ctx, tok_dir)
        print_config(cfg)
        ctx.sinks = open_sinks(cfg)
    # the model: same seed on every rank, so every rank starts from the same weights
    torch.manual_seed(cfg.seed)
    ctx.model_config = GPTConfig(**{k: getattr(cfg, k) for k in MODEL_KEYS})
    ctx.raw = GPT(ctx.model_config).to(device)
    ctx.wrapped = wrap_model(ctx.raw, fsdp=cfg.fsdp, dtype=cfg.dtype, cpu_offload=cfg.cpu_offload)
    ctx.model = torch.compile(ctx.wrapped) if cfg.compile else ctx.wrapped
    ctx.flops_per_token, ctx.peak_flops = ctx.raw.flops_per_token(), device_peak_flops(device)
    ctx.optimizer = build_optimizer(cfg, ctx.raw, device)
    ctx.scaler = torch.amp.GradScaler(device.type, enabled=cfg.dtype == "float16" and not cfg.fp16_no_scaler)
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
    ctx.autocast = contextlib.nullcontext() if cfg.dtype == "float32" else torch.autocast(device.type, ptdtype)
    ctx.run = SimpleNamespace(step=0, data_step=0, lr_cut_until=0, rollbacks=0, bad_in_row=0,
                              best_val_loss=math.inf, losses=deque(maxlen=cfg.spike_window),
                              norms=deque(maxlen=cfg.spike_window), range_points=[])
    if world_size > 1:
        dist.barrier()  # out_dir exists before any rank reads it
    return ctx


def build_optimizer(cfg, model, device):
    """AdamW with weight decay on matrices only (norm gains and biases are not pulled to 0), or SGD."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return make_optimizer(torch.optim.SGD, groups, zero=cfg.zero, lr=cfg.learning_rate, momentum=cfg.momentum)
    return make_optimizer(torch.optim.AdamW, groups, zero=cfg.zero, lr=cfg.learning_rate,
                          betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")


def print_config(cfg):
    text = ", ".join(f"{k}={v!r}" for k, v in vars(cfg).items())
    print("config:\n" + textwrap.fill(text, 110, initial_indent="  ", subsequent_indent="  "))


# -----------------------------------------------------------------------------
# logging: metrics.jsonl (rank 0), the console, tensorboard / wandb when asked for and installed


def open_sinks(cfg):
    sinks = []
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("tensorboard=True but the tensorboard package is not installed: logging to metrics.jsonl only")
        else:
            writer = SummaryWriter(str(Path(cfg.out_dir) / "tb"))
            sinks.append(lambda kind, step, values: [writer.add_scalar(f"{kind}/{k}", v, step)
                                                     for k, v in values.items()])
    if cfg.wandb_log:
        try:
            import wandb
        except ImportError:
            print("wandb_log=True but the wandb package is not installed: logging to metrics.jsonl only")
        else:
            wandb.init(project=cfg.wandb_project, name=Path(cfg.out_dir).name, config=vars(cfg))
            sinks.append(lambda kind, step, values: wandb.log({f"{kind}/{k}": v for k, v in values.items()}))
    return sinks


def log_record(ctx, record):
    """One line of metrics.jsonl. JSON has no NaN: a non-finite number is written as null."""
    if ctx.rank != 0:
        return
    record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    with open(ctx.out_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    numbers = {k: v for k, v in record.items() if type(v) in (int, float) and k != "step"}
    for sink in ctx.sinks:
        sink(record["kind"], record["step"], numbers)


def elapsed(ctx):
    return ctx.time_offset + time.time() - ctx.t_start


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def log_train(ctx, loss, grad_norm, lr, step_seconds):
    """The log line and train record; throughput is measured over the steps since the last one."""
    cfg, step = ctx.cfg, ctx.run.step
    tokens_per_step = cfg.rows_per_step * cfg.block_size
    tokens_per_s = tokens_per_step * len(step_seconds) / sum(step_seconds)
    # MFU per device: model FLOPs done / the device's peak (bf16 dense); None on a CPU
    mfu_now = mfu(tokens_per_s / ctx.world_size, ctx.peak_flops, ctx.flops_per_token) if ctx.peak_flops else None
    record = {"kind": "train", "step": step, "tokens": step * tokens_per_step, "time_s": round(elapsed(ctx), 3),
              "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": round(tokens_per_s, 1),
              "mfu": mfu_now, "step_ms": round(1000 * sum(step_seconds) / len(step_seconds), 2),
              "peak_mem_mb": round(peak_memory_mb(ctx.device), 1)}
    log_record(ctx, record)
    if ctx.rank == 0:
        print(f"step {step:6d} | loss {loss:.4f} | lr {lr:.2e} | grad norm {grad_norm:.3f} | "
              f"{tokens_per_s:,.0f} tok/s | mfu {'-' if mfu_now is None else f'{100 * mfu_now:.1f}%'} | "
              f"{record['step_ms']:.0f} ms/step | peak mem {record['peak_mem_mb']:,.0f} MiB", flush=True)


# -----------------------------------------------------------------------------
# evaluation: loss and bits per byte of every val bin


@torch.no_grad()
def evaluate(ctx):
    """The eval record: mean loss over eval_iters batches of each val bin (the same windows every time,
    so evaluations compare), and bits per byte = loss * tokens / (bytes * ln 2) from meta.json."""
    cfg, results = ctx.cfg, {}
    ctx.model.eval()
    for name in ctx.val_bins:
        path = ctx.data_dir / name
        n = len(np.memmap(path, dtype=np.uint16, mode="r"))
        total = torch.zeros((), device=ctx.device)
        for k in range(cfg.eval_iters):  # a batch of rows_per_step windows, split as in training
            starts = window_starts(n, cfg.block_size, cfg.rows_per_step, [cfg.seed, 1, k])
            for micro in range(cfg.gradient_accumulation_steps):
                first = (micro * ctx.world_size + ctx.rank) * cfg.batch_size
                x, y = to_device(read_windows(path, starts[first:first + cfg.batch_size], cfg.block_size + 1),
                                 ctx.device)
                with ctx.autocast:
                    _, loss = ctx.model(x, y)
                total += loss.float()
        if ctx.world_size > 1:
            dist.all_reduce(total)
        loss = total.item() / (cfg.eval_iters * cfg.rows_per_step // cfg.batch_size)
        info = ctx.meta["bins"][name]
        bpb = loss * info["tokens"] / (info["bytes"] * math.log(2)) if info.get("bytes") else None
        results[name] = {"loss": loss, "bpb": bpb}
    ctx.model.train()
    overall = results.get("val.bin", {"loss": None, "bpb": None})
    per_source = {name[4:-4]: r for name, r in results.items() if name.startswith("val_")}
    return {"kind": "eval", "step": ctx.run.step, "tokens": ctx.run.step * cfg.rows_per_step * cfg.block_size,
            "time_s": round(elapsed(ctx), 3), "val_loss": overall["loss"], "val_bpb": overall["bpb"],
            "per_source": per_source}


def eval_and_log(ctx):
    """Evaluate; a new best val loss also writes best.pt (after ckpt_*, so a crash here loses nothing)."""
    record = evaluate(ctx)
    log_record(ctx, record)
    if ctx.rank == 0:
        parts = [f"{src} {r['loss']:.4f} ({r['bpb']:.3f} bpb)" for src, r in record["per_source"].items()]
        val = "-" if record["val_loss"] is None else f"{record['val_loss']:.4f} ({record['val_bpb']:.3f} bpb)"
        print(f"eval step {record['step']}: val loss {val}" + "".join(f" | {p}" for p in parts), flush=True)
    if record["val_loss"] is not None and record["val_loss"] < ctx.run.best_val_loss:
        ctx.run.best_val_loss = record["val_loss"]
        save_checkpoint(ctx, "best")


# -----------------------------------------------------------------------------
# one optimizer step


def current_lr(ctx):
    cfg, run = ctx.cfg, ctx.run
    lr = get_lr(run.step, cfg)
    if run.step < run.lr_cut_until:  # for a while after a rollback (PaLM's recipe)
        lr *= cfg.rollback_lr_mult
    if cfg.inject_lr_start <= run.data_step < cfg.inject_lr_start + cfg.inject_lr_steps:
        lr *= cfg.inject_lr_mult  # fault injection, tied to data steps: a rolled-back run has moved past them
    return lr


def forward_backward(ctx, lr):
    """Gradients of one global batch: returns (mean loss, pre-clip gradient norm) as Python floats.

    Nothing waits for the device inside the micro-step loop; the .tolist() at the end is the one host
    sync per step, which the monitor needs before deciding whether to apply the update.
    """
    cfg, accum = ctx.cfg, ctx.cfg.gradient_accumulation_steps
    for group in ctx.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=ctx.device)
    for micro in range(accum):
        first = (micro * ctx.world_size + ctx.rank) * cfg.batch_size  # this rank's rows of the global batch
        xy, _ = train_rows(cfg, ctx.data_dir, ctx.run.data_step, first, cfg.batch_size)
        x, y = to_device(xy, ctx.device)
        set_gradient_sync(ctx.wrapped, micro == accum - 1)  # DDP all-reduces on the last micro-step only
        with ctx.autocast:
            _, loss = ctx.model(x, y)
        loss = loss / accum  # the mean over micro-batches, as one big batch would give
        ctx.scaler.scale(loss).backward()
        loss_sum += loss.detach()
    ctx.scaler.unscale_(ctx.optimizer)  # true gradients, so clipping and the logged norm mean what they say
    norm = torch.nn.utils.clip_grad_norm_(ctx.raw.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a sharded (DTensor) scalar
    if ctx.world_size > 1:
        dist.all_reduce(loss_sum)  # every rank then judges the same numbers and takes the same action
        loss_sum /= ctx.world_size
    loss, grad_norm = torch.stack([loss_sum.float(), norm.float().to(ctx.device)]).tolist()
    return loss, grad_norm


def handle_anomaly(ctx, anomaly, detail, data_step, loss, grad_norm, batch_file):
    """Do what spike_policy says (the update itself was applied or dropped by the caller) and log the
    event. Returns the action: "update" (warn), "skip", or "rollback"."""
    cfg, run = ctx.cfg, ctx.run
    step = run.step + 1  # the update that tripped the monitor
    action = {"warn": "update", "skip": "skip", "rollback": "rollback"}[cfg.spike_policy]
    restored = None
    if action == "rollback":
        path, ckpt = newest_checkpoint(ctx)
        if path is None:
            action = "skip"  # nothing saved yet to go back to
        else:
            data_step_now, rollbacks = run.data_step, run.rollbacks
            restore(ctx, path, ckpt)
            run.data_step, run.rollbacks = data_step_now, rollbacks + 1  # go on past the bad batches
            run.lr_cut_until = run.step + cfg.rollback_lr_steps
            restored = path.name
    rows = cfg.rows_per_step
    log_record(ctx, {"kind": "event", "step": step, "event": anomaly, "action": action, "detail": detail,
                     "loss": loss, "grad_norm": grad_norm, "data_step": data_step,
                     "rows": f"0..{rows - 1} of the batch of data step {data_step}", "batch_file": batch_file,
                     "restored": restored, "time_s": round(elapsed(ctx), 3)})
    if ctx.rank == 0:
        print(f"step {step}: {anomaly} ({detail}) -> {action}" + (f" to {restored}" if restored else ""))
    return action


# -----------------------------------------------------------------------------
# the loop


def train(ctx):
    """Optimizer steps until max_iters; returns the run's end status ("finished" or "diverged")."""
    cfg, run = ctx.cfg, ctx.run
    step_seconds = []  # since the last log line
    while run.step < cfg.max_iters:
        t0 = time.perf_counter()
        lr = current_lr(ctx)
        loss, grad_norm = forward_backward(ctx, lr)
        anomaly, detail = check_stability(loss, grad_norm, (run.losses, run.norms), cfg, ctx.scaler.is_enabled())
        batch_file = dump_batch(ctx, run.step + 1, run.data_step) if anomaly else None  # the model that saw it
        if anomaly is None or cfg.spike_policy == "warn":
            ctx.scaler.step(ctx.optimizer)  # a plain optimizer.step() unless fp16 with a scaler
        ctx.scaler.update()
        ctx.optimizer.zero_grad(set_to_none=True)
        run.data_step += 1  # whatever happened, the next step reads the next batch
        action = "update"
        if anomaly:
            action = handle_anomaly(ctx, anomaly, detail, run.data_step - 1, loss, grad_norm, batch_file)
        # a run that keeps failing (NaN after NaN, or spike after skipped spike: skipping cannot repair
        # weights a bad update already broke) stops instead of spinning until max_iters
        run.bad_in_row = run.bad_in_row + 1 if anomaly == "nan" or action == "skip" else 0
        if run.bad_in_row >= cfg.diverge_patience or run.rollbacks > cfg.max_rollbacks:
            return "diverged"
        if action != "update":
            continue
        run.step += 1
        step_seconds.append(time.perf_counter() - t0)
        if run.step % cfg.log_interval == 0 or run.step == cfg.max_iters:
            log_train(ctx, loss, grad_norm, lr, step_seconds)
            step_seconds = []
        if run.step % cfg.checkpoint_interval == 0 or run.step == cfg.max_iters:
            save_checkpoint(ctx, f"ckpt_{run.step:07d}")
            prune_checkpoints(ctx)
        if run.step % cfg.eval_interval == 0 or run.step == cfg.max_iters:
            eval_and_log(ctx)
        if cfg.lr_schedule == "range_test" and range_test_over(ctx, lr, loss):
            break
    return "finished"


# -----------------------------------------------------------------------------
# the LR range test (lr_schedule="range_test"): which learning rate to start from
#
# Smith (2017): train briefly while the LR grows exponentially from min_lr to learning_rate, and watch
# the loss. Too small an LR barely moves it; somewhere it falls fastest; past some LR it turns and blows
# up. The run stops there (smoothed loss 4x its best). Two readings bracket a good LR: where the loss
# falls fastest (fastai's "steep"), and a tenth of the LR at the minimum (fastai's older rule, below the
# edge). The loss at each LR also carries all the training before it, which flatters the high end: the
# bracket is where the LR sweep (sweeps.py lr) starts, not its answer.


def range_test_over(ctx, lr, loss, beta=0.9):
    """Record (lr, loss) and the bias-corrected moving average of the loss; True once it blew up."""
    points = ctx.run.range_points
    average = beta * (points[-1]["average_raw"] if points else 0.0) + (1 - beta) * loss
    points.append({"step": ctx.run.step, "lr": lr, "loss": loss, "average_raw": average,
                   "smoothed": average / (1 - beta ** (len(points) + 1))})
    best = min(p["smoothed"] for p in points)
    return len(points) > 10 and (points[-1]["smoothed"] > 4 * best or not math.isfinite(loss))


def range_test_report(ctx):
    """Print the smoothed loss against the LR and the bracket to sweep; write out_dir/range_test.json."""
    points = ctx.run.range_points
    if not points:
        return None
    smoothed = np.array([p["smoothed"] for p in points])
    lrs = np.array([p["lr"] for p in points])
    lowest = int(np.nanargmin(smoothed))
    slope = np.gradient(smoothed[:lowest + 1], np.log(lrs[:lowest + 1])) if lowest > 1 else np.zeros(1)
    steepest = int(np.argmin(slope))
    bracket = sorted([lrs[steepest], lrs[lowest] / 10])
    result = {"lr_at_min_loss": lrs[lowest], "lr_steepest": lrs[steepest], "suggested_range": bracket,
              "points": [{k: v for k, v in p.items() if k != "average_raw"} for p in points]}
    print("LR range test: smoothed loss against the learning rate")
    for i in np.unique([*np.linspace(0, len(points) - 1, 10).round().astype(int), lowest, steepest]):
        mark = " <- minimum" if i == lowest else " <- steepest fall" if i == steepest else ""
        print(f"  lr {lrs[i]:9.2e}  loss {smoothed[i]:.4f}{mark}")
    print(f"steepest fall at lr {lrs[steepest]:.2e}, minimum at {lrs[lowest]:.2e}: sweep learning_rate "
          f"from {bracket[0]:.1e} to {bracket[1]:.1e} (the steepest fall, a tenth of the minimum's)")
    write_atomic(ctx.out_dir / "range_test.json", json.dumps(result, indent=1))
    return result


def resume(ctx):
    """Continue out_dir's newest intact checkpoint; metrics.jsonl is cut back to that step."""
    path, ckpt = newest_checkpoint(ctx)
    if path is None:
        raise SystemExit(f"{ctx.out_dir}: --resume, but there is no checkpoint to resume from")
    ckpt = restore(ctx, path, ckpt)
    ctx.time_offset = ckpt["time_s"]
    metrics = ctx.out_dir / "metrics.jsonl"
    kept = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    kept = [r for r in kept if r["kind"] != "end" and r["step"] <= ctx.run.step]
    ctx.run.best_val_loss = min([r["val_loss"] for r in kept if r["kind"] == "eval" and r["val_loss"] is not None],
                                default=math.inf)
    if ctx.world_size > 1:
        dist.barrier()  # every rank has read metrics.jsonl before rank 0 rewrites it
    if ctx.rank == 0:
        write_atomic(metrics, "".join(json.dumps(r) + "\n" for r in kept))
        print(f"resuming from {path} (step {ctx.run.step}, data step {ctx.run.data_step})")
    log_record(ctx, {"kind": "event", "step": ctx.run.step, "event": "resume", "action": "continue",
                     "detail": f"from {path.name}", "time_s": round(elapsed(ctx), 3)})


def main(argv=None):
    cfg = get_config(sys.argv[1:] if argv is None else argv)
    ctx = setup(cfg)
    if cfg.resume:
        resume(ctx)
    else:
        eval_and_log(ctx)  # step 0: the untrained model's loss, ~ln(vocab_size)
    status = train(ctx)
    if cfg.lr_schedule == "range_test" and ctx.rank == 0:
        range_test_report(ctx)
    log_record(ctx, {"kind": "end", "step": ctx.run.step, "time_s": round(elapsed(ctx), 3), "status": status})
    if ctx.rank == 0:
        print(f"{status} at step {ctx.run.step} after {elapsed(ctx):.0f} s; run directory {ctx.out_dir}")
    del ctx.model, ctx.wrapped, ctx.optimizer
    shutdown()
    return ctx


if __name__ == "__main__":
    main()

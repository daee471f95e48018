"""
train.py — pretrain the GPT of model.py on a dataset made by prepare.py.

    python train.py config/tiny.py --max_iters=200 --dtype=float32   # one process, CPU or GPU
    python train.py config/tiny.py --resume                          # continue the newest intact checkpoint
    torchrun --standalone --nproc_per_node=8 train.py config/1b.py   # DDP, one process per GPU

The loop and what it needs, top to bottom: config (the globals below; configurator.py reads files and
--key=value over them) -> LR schedule -> data -> setup -> checkpoints -> logging -> eval -> step -> loop.
The neighbours hold the rest: model.py the GPT, dataloader.py the bins, parallel.py the processes,
checkpoint.py saving and loading, monitor.py spikes / rollback / fault injection, run_dir.py out_dir
(lock, metrics.jsonl, SIGTERM), range_test.py the LR range test, plan.py what a config costs.

out_dir gets config.json, metrics.jsonl, tokenizer/, ckpt_{step:07d}.pt, best.pt and events/. Exit codes: 0
finished, 1 diverged, 143/130 preempted by SIGTERM/SIGINT (resume with --resume), 2 an error (one line).
"""
import contextlib
import dataclasses
import math
import sys
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

import checkpoint
import monitor
from common import UserError, cli, device_peak_flops, keep_freed_memory, release_lock
from configurator import load_config
from dataloader import batch_shape, bin_length, dataset_hash, read_dataset, read_windows, to_device, window_starts
from model import GPT, GPTConfig
from parallel import barrier, init_distributed, make_optimizer, set_gradient_sync, shutdown, wrap_model
from range_test import range_test_over, range_test_report
from run_dir import agree, catch_stop_signals, exit_code, open_run_dir, read_metrics_until, record_cost, run_cost, trim_metrics
from tokenizer import load_tokenizer

# -----------------------------------------------------------------------------
# default config values: config/tiny.py's run on data/default
# I/O and logging
out_dir = "out/tiny"              # run directory: checkpoints, metrics.jsonl, config.json, tokenizer/
dataset = "default"               # data/NAME, or a path to a dataset directory (contains a '/')
resume = False                    # continue from out_dir's newest intact checkpoint (--resume)
allow_new_dataset = False         # --resume on another dataset (e.g. annealing on a new mix); logged as an event
log_interval = 10                 # steps between train lines (each costs one host sync more)
eval_interval = 100               # steps between evaluations of the val bins
eval_iters = 10                   # global batches per val bin per evaluation
checkpoint_interval = 100         # steps between ckpt_*.pt (the last step always saves)
checkpoint_every_s = 0.0          # also save when this many seconds passed since the last save (0 = off)
keep_last = 3                     # ckpt_*.pt files kept (best.pt comes on top)
tensorboard = False               # also log to out_dir/tb (if the tensorboard package is installed)
wandb_log = False                 # also log to wandb (if installed; WANDB_MODE=offline works)
wandb_project = "nanopretrain"    # wandb project name
price_per_hour = 0.0              # USD per device-hour: the end record then says what the run cost
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
qk_norm = False                   # RMSNorm q and k per head (Wortsman et al. 2023: no attention-logit growth)
z_loss = 0.0                      # + z_loss * logsumexp(logits)^2 in the train loss (1e-4 in PaLM; 0 = off)
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
compile_model = False             # torch.compile the model
seed = 1337                       # init and data order; the batches depend on (seed, step) only
# stability monitor
spike_policy = "warn"             # "warn" | "skip" (drop the update) | "rollback" (to the last checkpoint)
spike_sigma = 6.0                 # a spike: loss > running mean + spike_sigma * running std
spike_window = 50                 # steps in the running statistics
spike_burnin = 20                 # steps before spikes are judged (the early loss falls too fast)
grad_explosion_factor = 10.0      # an explosion: grad norm > this x the running median
rollback_lr_mult = 0.5            # after a rollback the LR drops to this x the schedule's ...
rollback_lr_steps = 50            # ... and ramps back to 1 x over this many steps
layer_stats_interval = 0          # every N steps: per-block grad norm, activation RMS/max, attention logit max (0 = off)
max_rollbacks = 5                 # more rollbacks than this: stop with status "diverged"
diverge_patience = 5              # this many NaN or skipped steps in a row: stop with status "diverged"
# fault injection (tests and the incident lab)
inject_bad_batch_step = -1        # poison the batch of this data step (-1 = never)
inject_bad_batch_kind = "random"  # "random" tokens | "constant" (one token repeated)
inject_lr_mult = 1.0              # multiply the LR by this ...
inject_lr_start = 0               # ... from this step ...
inject_lr_steps = 0               # ... for this many steps
inject_slow_save = 0.0            # seconds to sleep between writing a checkpoint and renaming it
inject_slow_reader = 0.0          # a slow data reader: each batch waits this x the last step's compute time
# several processes (parallel.py)
zero = 0                          # 1 = ZeRO-1: shard AdamW's states over the ranks
fsdp = False                      # shard weights, grads and optimizer states per block (FSDP2)
cpu_offload = False               # with fsdp: keep the shards in CPU memory
dist_timeout_s = 600              # a collective waiting longer than this fails (a dead or hung rank)
# -----------------------------------------------------------------------------
DEFAULTS = {k: v for k, v in globals().items() if not k.startswith("_") and isinstance(v, (bool, int, float, str))}
MODEL_KEYS = ["block_size", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden",
              "tie_embeddings", "rope_theta", "norm_eps", "kernels", "activation_checkpointing", "qk_norm", "z_loss"]

CHOICES = [("lr_schedule", ("cosine", "wsd", "constant", "range_test")), ("optimizer", ("adamw", "sgd")),
           ("dtype", ("float32", "bfloat16", "float16")), ("spike_policy", ("warn", "skip", "rollback")),
           ("inject_bad_batch_kind", ("random", "constant"))]
COUNTS = ["batch_size", "block_size", "gradient_accumulation_steps", "log_interval", "eval_interval", "eval_iters",
          "checkpoint_interval", "keep_last"]  # 0 would divide by zero mid-run: refused before out_dir is touched


def get_config(argv):
    """Defaults (the globals above) <- config files <- --key=value, checked (configurator.py)."""
    return load_config(argv, DEFAULTS, CHOICES, COUNTS)


# -----------------------------------------------------------------------------
# learning rate schedule


def get_lr(step, cfg):
    """The learning rate of optimizer step `step` (0-based)."""
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    # 0) the LR range test: no warmup, min_lr growing exponentially to learning_rate at the last step
    if cfg.lr_schedule == "range_test":
        return cfg.min_lr * (cfg.learning_rate / cfg.min_lr) ** (step / max(1, cfg.max_iters - 1))
    # 1) linear warmup from lr/(warmup+1) to lr: the first updates come before AdamW's moments settle
    if step < cfg.warmup_iters:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_iters + 1)
    # 2) after the decay: stay at the floor
    if step >= decay_iters or cfg.lr_schedule == "constant":
        return cfg.learning_rate if cfg.lr_schedule == "constant" else cfg.min_lr
    if cfg.lr_schedule == "cosine":
        # 3) cosine from lr (end of warmup) to min_lr (lr_decay_iters)
        progress = (step - cfg.warmup_iters) / (decay_iters - cfg.warmup_iters)
        return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.learning_rate - cfg.min_lr)
    # 4) WSD: flat at lr, then the last decay_frac of the steps fall to min_lr as 1 - sqrt(progress).
    # 1-sqrt drops fast at first and then lingers near the floor; Hägele et al. (2024) found it beats a
    # linear anneal of the same length, and a run can be extended by branching before the decay.
    decay_start = decay_iters - max(1, round(cfg.decay_frac * decay_iters))
    if step < decay_start:
        return cfg.learning_rate
    progress = (step - decay_start) / (decay_iters - decay_start)
    return cfg.min_lr + (1 - math.sqrt(progress)) * (cfg.learning_rate - cfg.min_lr)


# -----------------------------------------------------------------------------
# data: the global batch of data step d, drawn by dataloader.py from (seed, d) alone


def train_rows(ctx, data_step, first, count):
    """(count, T + 1) int64 rows first..first+count of data step data_step's global batch, and their offsets."""
    path, T = ctx.data_dir / "train.bin", ctx.cfg.block_size
    monitor.slow_reader(ctx.cfg, ctx.run.last_compute_s / ctx.accum)  # the data-loader stall incident
    starts = window_starts(bin_length(path), T, ctx.rows_per_step, [ctx.cfg.seed, 0, data_step])
    starts = starts[first:first + count]
    xy = read_windows(path, starts, T + 1)
    vocab_size = ctx.model_config.vocab_size
    return monitor.poison_batch(ctx.cfg, xy, data_step, first, count, ctx.rows_per_step, vocab_size), starts


# -----------------------------------------------------------------------------
# setup: processes, device, dataset, model, optimizer (nothing on disk changes here)


def setup(cfg):
    """Everything the loop needs, in one namespace: ctx. Derived values (world size, accumulation, rows
    per step, the dataset's vocab size) live here, never written back into cfg, so config.json stays
    the config that was asked for."""
    if cfg.fp16_no_scaler and cfg.dtype != "float16":
        raise UserError(f"config: fp16_no_scaler=True needs dtype='float16' (dtype is {cfg.dtype!r})")
    data_dir, meta, val_bins = read_dataset(cfg.dataset, cfg.block_size)
    vocab_size = cfg.vocab_size or meta["vocab_size"]
    if vocab_size < meta["vocab_size"]:
        raise UserError(f"config: vocab_size={vocab_size} < the dataset's {meta['vocab_size']}")
    try:  # an invalid shape (n_head not dividing n_embd...) fails here, before out_dir is touched
        model_config = GPTConfig(**{**{k: getattr(cfg, k) for k in MODEL_KEYS}, "vocab_size": vocab_size})
    except ValueError as error:
        raise UserError(f"config: {error}") from None
    rank, local_rank, world_size = init_distributed(cfg.dist_timeout_s)
    name = cfg.device if cfg.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    if device.type == "cpu":  # a fifth of a CPU step went to page faults (common.py)
        keep_freed_memory()
    accum, rows_per_step = batch_shape(cfg, world_size)
    ctx = SimpleNamespace(cfg=cfg, rank=rank, world_size=world_size, device=device, accum=accum,
                          rows_per_step=rows_per_step, data_dir=data_dir, meta=meta, val_bins=val_bins,
                          tok_dir=data_dir / meta["tokenizer"], tok_hash=meta["tokenizer_hash"],
                          data_hash=dataset_hash(meta), out_dir=Path(cfg.out_dir), t_start=time.time(),
                          time_offset=0.0, sharded=bool(cfg.zero or cfg.fsdp), sinks=[], lock=None,
                          model_config=model_config)
    ctx.enc = load_tokenizer(ctx.tok_dir)
    # the model: same seed on every rank, so every rank starts from the same weights
    torch.manual_seed(cfg.seed)
    ctx.model = GPT(model_config).to(device)  # the GPT itself: state_dict, flops_per_token, generate
    ctx.ddp_model = wrap_model(ctx.model, fsdp=cfg.fsdp, dtype=cfg.dtype, cpu_offload=cfg.cpu_offload)
    ctx.forward = torch.compile(ctx.ddp_model) if cfg.compile_model else ctx.ddp_model  # what the step calls
    ctx.flops_per_token, ctx.peak_flops = ctx.model.flops_per_token(), device_peak_flops(device)
    ctx.optimizer = build_optimizer(cfg, ctx.model, device)
    ctx.scaler = torch.amp.GradScaler(device.type, enabled=cfg.dtype == "float16" and not cfg.fp16_no_scaler)
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
    ctx.autocast = contextlib.nullcontext() if cfg.dtype == "float32" else torch.autocast(device.type, ptdtype)
    ctx.run = SimpleNamespace(step=0, data_step=0, lr_cut_until=0, rollbacks=0, bad_in_row=0,
                              best_val_loss=math.inf, losses=deque(maxlen=cfg.spike_window),
                              norms=deque(maxlen=cfg.spike_window), range_points=[], stop_signal=None,
                              last_save=time.time(), last_compute_s=0.0)
    return ctx


def build_optimizer(cfg, model, device):
    """AdamW (fused: one kernel for all tensors) with weight decay on matrices only (not on norm gains), or SGD."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return make_optimizer(torch.optim.SGD, groups, zero=cfg.zero, lr=cfg.learning_rate, momentum=cfg.momentum)
    return make_optimizer(torch.optim.AdamW, groups, zero=cfg.zero, lr=cfg.learning_rate,
                          betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda" or not cfg.fsdp)


# -----------------------------------------------------------------------------
# checkpoints: what the loop adds to checkpoint.py (its own state in, its own state out)


def save_checkpoint(ctx, name):
    """out_dir/NAME.pt, or the directory out_dir/NAME when sharded. Every rank calls it."""
    run = ctx.run
    meta = {"model_config": dataclasses.asdict(ctx.model_config), "scaler": ctx.scaler.state_dict(),
            "step": run.step, "rng": checkpoint.gather_rng_states(), "config": vars(ctx.cfg),
            "derived": {"world_size": ctx.world_size, "gradient_accumulation_steps": ctx.accum,
                        "rows_per_step": ctx.rows_per_step},
            "tokenizer_hash": ctx.tok_hash, "dataset_hash": ctx.data_hash,
            "data_state": {"data_step": run.data_step, "lr_cut_until": run.lr_cut_until, "rollbacks": run.rollbacks},
            "monitor": {"losses": list(run.losses), "norms": list(run.norms)}, "time_s": elapsed(ctx)}
    checkpoint.save(ctx.out_dir, name, ctx.model, ctx.ddp_model, ctx.optimizer, meta, ctx.sharded,
                    ctx.cfg.inject_slow_save)
    if name != "best":  # checkpoint_every_s counts from the last resumable save
        run.last_save = time.time()


def restore(ctx, path, meta):
    """Load model, optimizer, scaler, RNG and the loop's state from a checkpoint (every rank)."""
    meta = checkpoint.load_into(path, ctx.model, ctx.ddp_model, ctx.optimizer, meta)
    if meta["scaler"]:
        ctx.scaler.load_state_dict(meta["scaler"])
    rng = meta["rng"]
    checkpoint.set_rng_states(rng[ctx.rank] if len(rng) == ctx.world_size else rng[0])
    run, data = ctx.run, meta["data_state"]
    run.step, run.data_step = meta["step"], data["data_step"]
    run.lr_cut_until, run.rollbacks = data["lr_cut_until"], data["rollbacks"]
    run.losses = deque(meta["monitor"]["losses"], maxlen=ctx.cfg.spike_window)
    run.norms = deque(meta["monitor"]["norms"], maxlen=ctx.cfg.spike_window)
    return meta


def rollback(ctx):
    """The monitor's rollback: back to the newest checkpoint, but go on PAST the batches that broke the
    run, at rollback_lr_mult x the LR for rollback_lr_steps steps (PaLM's recipe). Returns its name."""
    path, meta = checkpoint.newest(ctx.out_dir)
    if path is None:
        return None
    data_step_now, rollbacks = ctx.run.data_step, ctx.run.rollbacks
    restore(ctx, path, meta)
    ctx.run.data_step, ctx.run.rollbacks = data_step_now, rollbacks + 1
    ctx.run.lr_cut_until = ctx.run.step + ctx.cfg.rollback_lr_steps
    return path.name


def elapsed(ctx):
    return ctx.time_offset + time.time() - ctx.t_start


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
        n = bin_length(path)
        total = torch.zeros((), device=ctx.device)
        for k in range(cfg.eval_iters):  # a batch of rows_per_step windows, split as in training
            starts = window_starts(n, cfg.block_size, ctx.rows_per_step, [cfg.seed, 1, k])
            for micro in range(ctx.accum):
                first = (micro * ctx.world_size + ctx.rank) * cfg.batch_size
                x, y = to_device(read_windows(path, starts[first:first + cfg.batch_size], cfg.block_size + 1),
                                 ctx.device)  # (B, T) each
                with ctx.autocast:
                    _, loss = ctx.forward(x, y)
                total += loss.float()
        if ctx.world_size > 1:
            dist.all_reduce(total)
        loss = total.item() / (cfg.eval_iters * ctx.rows_per_step // cfg.batch_size)
        info = ctx.meta["bins"][name]
        bpb = loss * info["tokens"] / (info["bytes"] * math.log(2)) if info.get("bytes") else None
        results[name] = {"loss": loss, "bpb": bpb}
    ctx.model.train()
    overall = results.get("val.bin", {"loss": None, "bpb": None})
    per_source = {name[4:-4]: r for name, r in results.items() if name.startswith("val_")}
    return {"kind": "eval", "step": ctx.run.step, "tokens": ctx.run.step * ctx.rows_per_step * cfg.block_size,
            "time_s": round(elapsed(ctx), 3), "val_loss": overall["loss"], "val_bpb": overall["bpb"],
            "per_source": per_source}


def eval_and_log(ctx):
    """Evaluate; a new best val loss also writes best.pt (after ckpt_*, so a crash here loses nothing)."""
    record = evaluate(ctx)
    monitor.log_record(ctx, record)
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
    # after a rollback, rollback_lr_mult x the schedule ramping back to 1 x at lr_cut_until (PaLM's recipe)
    return get_lr(run.step, cfg) * monitor.injected_lr_mult(cfg, run.data_step) * \
        monitor.rollback_ramp(cfg, run.step, run.lr_cut_until)


def forward_backward(ctx, lr):
    """Gradients of one global batch: returns (mean loss, pre-clip gradient norm, seconds spent waiting
    for the batches) as Python floats.

    Nothing waits for the device inside the micro-step loop; the .tolist() at the end is the one host
    sync per step, which the monitor needs before deciding whether to apply the update.
    """
    cfg, data_s = ctx.cfg, 0.0
    for group in ctx.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=ctx.device)
    every = cfg.layer_stats_interval
    layers = monitor.watch_layers(ctx.model) if every and ctx.run.step % every == 0 else None
    for micro in range(ctx.accum):
        first = (micro * ctx.world_size + ctx.rank) * cfg.batch_size  # this rank's rows of the global batch
        t0 = time.perf_counter()
        xy, _ = train_rows(ctx, ctx.run.data_step, first, cfg.batch_size)
        x, y = to_device(xy, ctx.device)  # (B, T) each
        data_s += time.perf_counter() - t0
        set_gradient_sync(ctx.ddp_model, micro == ctx.accum - 1)  # DDP all-reduces on the last micro-step only
        with ctx.autocast:
            _, loss = ctx.forward(x, y)
        loss = loss / ctx.accum  # the mean over micro-batches, as one big batch would give
        ctx.scaler.scale(loss).backward()
        loss_sum += loss.detach()
    ctx.scaler.unscale_(ctx.optimizer)  # true gradients, so clipping and the logged norm mean what they say
    if layers:  # per-block gradient norms (pre-clip) beside the activations the hooks saw
        monitor.log_layers(ctx, layers)
    norm = torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a sharded (DTensor) scalar
    if ctx.world_size > 1:
        dist.all_reduce(loss_sum)  # every rank then judges the same numbers and takes the same action
        loss_sum /= ctx.world_size
    loss, grad_norm = torch.stack([loss_sum.float(), norm.float().to(ctx.device)]).tolist()
    return loss, grad_norm, data_s


# -----------------------------------------------------------------------------
# the loop


def train(ctx):
    """Optimizer steps until max_iters; returns the run's end status: "finished", "diverged", or
    "preempted" (SIGTERM or SIGINT: the step in flight finishes, a checkpoint is saved)."""
    cfg, run = ctx.cfg, ctx.run
    step_seconds, data_seconds = [], []  # since the last log line
    while run.step < cfg.max_iters:
        timed_save = cfg.checkpoint_every_s > 0 and time.time() - run.last_save >= cfg.checkpoint_every_s
        stop, timed_save = agree([run.stop_signal is not None, timed_save], ctx.world_size, ctx.device)
        if stop or timed_save:  # a rented GPU can vanish: save by the clock too, not only by the step
            save_checkpoint(ctx, f"ckpt_{run.step:07d}")
            checkpoint.prune(ctx.out_dir, cfg.keep_last)
        if stop:
            return "preempted"
        t0 = time.perf_counter()
        lr = current_lr(ctx)
        loss, grad_norm, data_s = forward_backward(ctx, lr)
        anomaly, detail = monitor.check_stability(loss, grad_norm, (run.losses, run.norms), cfg,
                                                  ctx.scaler.is_enabled())
        # the evidence (the batch, the first layer that went non-finite) before an update changes the weights
        evidence = monitor.collect_evidence(ctx, train_rows, anomaly, run.data_step) if anomaly else None
        if anomaly is None or cfg.spike_policy == "warn":
            ctx.scaler.step(ctx.optimizer)  # a plain optimizer.step() unless fp16 with a scaler
        ctx.scaler.update()
        ctx.optimizer.zero_grad(set_to_none=True)
        run.data_step += 1  # whatever happened, the next step reads the next batch
        action = monitor.handle_anomaly(ctx, anomaly, detail, evidence, loss, grad_norm,
                                        lambda: rollback(ctx)) if anomaly else "update"
        # a run that keeps failing (NaN after NaN, or spike after skipped spike: skipping cannot repair
        # weights a bad update already broke) stops instead of spinning until max_iters
        run.bad_in_row = run.bad_in_row + 1 if anomaly == "nan" or action == "skip" else 0
        if run.bad_in_row >= cfg.diverge_patience or run.rollbacks > cfg.max_rollbacks:
            return "diverged"
        if action != "update":
            continue
        run.step += 1
        step_seconds.append(time.perf_counter() - t0)
        data_seconds.append(data_s)
        run.last_compute_s = step_seconds[-1] - data_s
        if run.step % cfg.log_interval == 0 or run.step == cfg.max_iters:
            monitor.log_train(ctx, loss, grad_norm, lr, (step_seconds, data_seconds), round(elapsed(ctx), 3))
            step_seconds, data_seconds = [], []
        if run.step % cfg.checkpoint_interval == 0 or run.step == cfg.max_iters:
            save_checkpoint(ctx, f"ckpt_{run.step:07d}")
            checkpoint.prune(ctx.out_dir, cfg.keep_last)
        if run.step % cfg.eval_interval == 0 or run.step == cfg.max_iters:
            eval_and_log(ctx)
        if cfg.lr_schedule == "range_test" and range_test_over(run.range_points, run.step, lr, loss):
            break
    return "finished"


def newest_resumable(ctx):
    """--resume's checks, made before anything is written: (the newest intact checkpoint, its metadata)."""
    path, meta = checkpoint.newest(ctx.out_dir)
    if path is None:
        raise UserError(f"{ctx.out_dir}: --resume, but there is no checkpoint to resume from")
    checkpoint.check_compatible(meta, ctx.model_config, ctx.tok_hash, path)  # the same shape and tokenizer
    if meta.get("dataset_hash", ctx.data_hash) != ctx.data_hash and not ctx.cfg.allow_new_dataset:
        raise UserError(f"{path}: trained on another dataset than {ctx.data_dir} (its bins differ); resume "
                        f"on the same dataset, or pass --allow_new_dataset to switch (e.g. to anneal on a new mix)")
    return path, meta


def resume_run(ctx, path, meta):
    """Continue from a checkpoint; metrics.jsonl is cut back to its step."""
    meta = restore(ctx, path, meta)
    ctx.time_offset = meta["time_s"]
    metrics = ctx.out_dir / "metrics.jsonl"
    kept = read_metrics_until(metrics, ctx.run.step)
    ctx.run.best_val_loss = min([r["val_loss"] for r in kept if r["kind"] == "eval" and r["val_loss"] is not None],
                                default=math.inf)
    barrier()  # every rank has read metrics.jsonl before rank 0 rewrites it
    if ctx.rank == 0:
        trim_metrics(metrics, kept)
        print(f"resuming from {path} (step {ctx.run.step}, data step {ctx.run.data_step})")
    monitor.log_record(ctx, {"kind": "event", "step": ctx.run.step, "event": "resume", "action": "continue",
                             "detail": f"from {path.name}", "time_s": round(elapsed(ctx), 3)})
    if meta.get("dataset_hash", ctx.data_hash) != ctx.data_hash:  # allowed by --allow_new_dataset
        monitor.log_record(ctx, {"kind": "event", "step": ctx.run.step, "event": "dataset_switch",
                                 "action": "continue", "detail": f"{meta['dataset_hash']} -> {ctx.data_hash} "
                                 f"({ctx.data_dir})", "time_s": round(elapsed(ctx), 3)})


def main(argv=None):
    """Returns (ctx, status). The checks come first; out_dir changes only once they have passed."""
    cfg = get_config(sys.argv[1:] if argv is None else argv)
    ctx = setup(cfg)
    try:
        resume_from = newest_resumable(ctx) if cfg.resume else None
        if ctx.rank == 0:
            ctx.lock = open_run_dir(ctx.out_dir, vars(cfg), ctx.tok_dir, fresh=not cfg.resume)
            ctx.sinks = monitor.open_sinks(cfg)
        barrier()  # out_dir exists before any rank writes into it
        if resume_from:
            resume_run(ctx, *resume_from)
        else:
            eval_and_log(ctx)  # step 0: the untrained model's loss, ~ln(vocab_size)
        restore_handlers = catch_stop_signals(ctx.run)
        status = train(ctx)
        restore_handlers()
        if cfg.lr_schedule == "range_test" and ctx.rank == 0:
            range_test_report(ctx.run.range_points, ctx.out_dir)
        cost = run_cost(ctx.world_size, elapsed(ctx), cfg.price_per_hour, ctx.model.num_params(),
                        ctx.run.step * ctx.rows_per_step * cfg.block_size, ctx.flops_per_token, ctx.peak_flops)
        monitor.log_record(ctx, {"kind": "end", "step": ctx.run.step, "time_s": round(elapsed(ctx), 3),
                                 "status": status, **cost})
        if ctx.rank == 0:
            record_cost(ctx.out_dir, vars(cfg), cost)
        if ctx.rank == 0:
            print(f"{status} at step {ctx.run.step} after {elapsed(ctx):.0f} s; run directory {ctx.out_dir}")
    finally:
        if ctx.lock:
            release_lock(ctx.lock)
        del ctx.forward, ctx.ddp_model, ctx.optimizer
        shutdown()
    return ctx, status


def command_line(argv):
    ctx, status = main(argv)
    return exit_code(status, ctx.run.stop_signal)


if __name__ == "__main__":
    sys.exit(cli(command_line))

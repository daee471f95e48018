"""
monitor.py — the stability monitor that watches every step of train.py, and the faults it is tested on.

    loss, grad norm of step t ─> check_stability ─> healthy: into the running window
                                                 └> "nan" | "spike" | "grad_explosion"
                                                       └> dump the batch (events/) ─> spike_policy:
                                                          warn (update anyway) | skip (drop the update)
                                                          | rollback (newest checkpoint, LR x 0.5 a while)

Large runs lose days to loss spikes (OPT-175B's logbook, PaLM's restarts). The recipe they converged on
is what this file does: notice (a spike against the recent loss, a gradient norm against its median),
keep the evidence (which rows of which batch), roll back to the last good checkpoint and go on PAST the
batches that broke it, at a lower LR for a while. Unlike train.py, nothing here runs the model's update;
train.py calls these functions around its step and does what they return.

Fault injection (the `inject_*` config keys) lives here too: a poisoned batch and an LR blow-up at a
chosen data step, so the tests and the incident lab can cause the accident the monitor must catch.
Where the numbers go (metrics.jsonl, the console, tensorboard, wandb) is at the end: the monitor's
other half is the log a person reads.
"""
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import mfu, peak_rss_mb, write_json
from run_dir import append_metrics

# -----------------------------------------------------------------------------
# 1. Detection


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


# -----------------------------------------------------------------------------
# 2. Evidence: the batch that tripped the monitor, worst row first


@torch.no_grad()
def dump_batch(ctx, xy, starts, step, data_step):
    """xy (B, T + 1): the first rows of the global batch of data_step, starts (B,) their offsets in
    train.bin. Every rank runs the forward (FSDP needs them all); rank 0 writes out_dir/events/ and
    returns the file's path: offset, loss, ids and text of each row, the worst row first."""
    x, y = xy[:, :-1].to(ctx.device), xy[:, 1:].to(ctx.device)
    with ctx.autocast:
        logits, _ = ctx.forward(x)  # (B, T, vocab)
    row_loss = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").mean(1).tolist()  # (B,)
    if ctx.rank != 0:
        return None
    rows = [{"row": i, "start": int(starts[i]), "loss": row_loss[i], "tokens": xy[i].tolist(),
             "text": ctx.enc.decode([t for t in xy[i].tolist() if t < ctx.enc.n_vocab])}
            for i in sorted(range(len(starts)), key=lambda i: -row_loss[i])]
    path = Path(ctx.out_dir) / "events" / f"batch_{step:07d}_data{data_step:07d}.json"
    write_json(path, {"step": step, "data_step": data_step, "rows": rows})
    return str(path)


# -----------------------------------------------------------------------------
# 3. The response: warn, skip or roll back


def respond(cfg, anomaly, rollback):
    """What spike_policy says to do about an anomaly: ("update" | "skip" | "rollback", restored name).
    rollback() restores the newest checkpoint and returns its name, or None when there is none yet
    (then the step is skipped: there is nothing to go back to)."""
    if cfg.spike_policy == "warn":
        return "update", None
    if cfg.spike_policy == "skip":
        return "skip", None
    restored = rollback()
    return ("rollback", restored) if restored else ("skip", None)


def event_record(step, anomaly, action, detail, loss, grad_norm, data_step, rows, batch_file, restored, time_s):
    """The metrics.jsonl line of one anomaly: what was seen, what was done, where the evidence is."""
    return {"kind": "event", "step": step, "event": anomaly, "action": action, "detail": detail,
            "loss": loss, "grad_norm": grad_norm, "data_step": data_step,
            "rows": f"0..{rows - 1} of the batch of data step {data_step}", "batch_file": batch_file,
            "restored": restored, "time_s": time_s}


# -----------------------------------------------------------------------------
# 4. Fault injection: the accidents on purpose, tied to data steps (a rolled-back run moves past them)


def poison_batch(cfg, xy, data_step, first, count, rows, vocab_size):
    """xy (count, T + 1) rows first..first+count of the global batch; at inject_bad_batch_step the whole
    global batch (rows x (T + 1)) is replaced by random tokens or one token repeated."""
    if data_step != cfg.inject_bad_batch_step:
        return xy
    rng = np.random.default_rng([cfg.seed, 2, data_step])
    poison = torch.from_numpy(rng.integers(0, vocab_size, size=(rows, cfg.block_size + 1)))
    if cfg.inject_bad_batch_kind == "constant":
        return torch.full_like(xy, int(poison[0, 0]))
    return poison[first:first + count]


def injected_lr_mult(cfg, data_step):
    """inject_lr_mult for data steps inject_lr_start .. + inject_lr_steps, else 1."""
    inside = cfg.inject_lr_start <= data_step < cfg.inject_lr_start + cfg.inject_lr_steps
    return cfg.inject_lr_mult if inside else 1.0


# -----------------------------------------------------------------------------
# 5. Where the numbers go besides metrics.jsonl: tensorboard and wandb, when asked for and installed


def open_sinks(cfg):
    """Functions sink(kind, step, {name: number}); none unless the config asks and the package exists."""
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


# -----------------------------------------------------------------------------
# 6. Logging: metrics.jsonl (rank 0), the console line, and the sinks above


def log_record(ctx, record):
    """Rank 0: a line of metrics.jsonl, and the same numbers to tensorboard / wandb when asked for."""
    if ctx.rank != 0:
        return
    record = append_metrics(ctx.out_dir, record)
    numbers = {k: v for k, v in record.items() if type(v) in (int, float) and k != "step"}
    for sink in ctx.sinks:
        sink(record["kind"], record["step"], numbers)


def log_train(ctx, loss, grad_norm, lr, step_seconds, time_s):
    """The log line and train record; throughput is measured over the steps since the last one."""
    step, tokens_per_step = ctx.run.step, ctx.rows_per_step * ctx.cfg.block_size
    tokens_per_s = tokens_per_step * len(step_seconds) / sum(step_seconds)
    # MFU per device: model FLOPs done / the device's peak (bf16 dense); None on a CPU
    mfu_now = mfu(tokens_per_s / ctx.world_size, ctx.peak_flops, ctx.flops_per_token) if ctx.peak_flops else None
    peak_mb = torch.cuda.max_memory_allocated(ctx.device) / 2**20 if ctx.device.type == "cuda" else peak_rss_mb()
    record = {"kind": "train", "step": step, "tokens": step * tokens_per_step, "time_s": time_s,
              "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": round(tokens_per_s, 1),
              "mfu": mfu_now, "step_ms": round(1000 * sum(step_seconds) / len(step_seconds), 2),
              "peak_mem_mb": round(peak_mb, 1)}
    log_record(ctx, record)
    if ctx.rank == 0:
        print(f"step {step:6d} | loss {loss:.4f} | lr {lr:.2e} | grad norm {grad_norm:.3f} | "
              f"{tokens_per_s:,.0f} tok/s | mfu {'-' if mfu_now is None else f'{100 * mfu_now:.1f}%'} | "
              f"{record['step_ms']:.0f} ms/step | peak mem {record['peak_mem_mb']:,.0f} MiB", flush=True)

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

To say WHERE a run breaks: every layer_stats_interval steps a "layers" record (per block: gradient norm,
% of gradient entries exactly 0, the residual stream's RMS and max, attention's largest logit), and on a
non-finite loss the first layer whose output went non-finite, found by forward hooks on the offending batch
before the update changes the weights. After a rollback the LR ramps back over rollback_lr_steps.

Fault injection (the `inject_*` config keys) lives here too: a poisoned batch, an LR blow-up at a chosen
data step and a slow data reader, so the tests and the incident lab can cause the accident the monitor
must catch.
Where the numbers go (metrics.jsonl, the console, tensorboard, wandb) is at the end: the monitor's
other half is the log a person reads.
"""
import math
import time
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
# 1b. Per-layer statistics every layer_stats_interval steps: where an instability starts, before it breaks


def watch_layers(model):
    """Forward hooks on every block for one step: the residual stream's RMS and max |x| after each block,
    and attention's largest logit q.k / sqrt(D) (Wortsman et al.'s attention-logit growth), max over the
    micro-batches. -> {"hooks": [...], "act_rms": [L], "act_max": [L], "attn_logit_max": [L]}."""
    blocks = model.transformer.h
    stats = {k: [0.0] * len(blocks) for k in ("act_rms", "act_max", "attn_logit_max")}

    def after_block(i):
        def record(module, args, x):  # x (B, T, C): the residual stream leaving block i
            x = x.detach().float()
            stats["act_rms"][i] = max(stats["act_rms"][i], x.pow(2).mean().sqrt().item())
            stats["act_max"][i] = max(stats["act_max"][i], x.abs().max().item())
        return record

    def after_attention(i):
        def record(module, args, output):  # args = (x (B, T, C), cos, sin, cache)
            with torch.no_grad():
                q, k, _ = module.qkv(*args[:3])  # (B, H, T, D), (B, H_kv, T, D): the extra c_attn costs ~2%
                k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
                logits = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, H, T, T)
                causal = torch.ones(logits.shape[-2:], dtype=torch.bool, device=logits.device).tril()
                top = logits.masked_fill(~causal, float("-inf")).max().item()
            stats["attn_logit_max"][i] = max(stats["attn_logit_max"][i], top)
        return record

    stats["hooks"] = [h for i, b in enumerate(blocks) for h in (b.register_forward_hook(after_block(i)),
                                                                 b.attn.register_forward_hook(after_attention(i)))]
    return stats


def log_layers(ctx, stats):
    """Remove watch_layers' hooks; log a "layers" record: the per-block gradient norm (pre-clip, after
    unscaling) and % of its entries exactly 0, beside the activation statistics, one number per block."""
    for h in stats.pop("hooks"):
        h.remove()
    grads = [[p.grad.float() for p in block.parameters() if p.grad is not None] for block in ctx.model.transformer.h]
    norms = [math.sqrt(sum(g.pow(2).sum().item() for g in block)) for block in grads]
    # fp16 without a scaler: gradient entries below 6e-8 round to exactly 0 (in fp32 nearly none are 0)
    zeros = [100 * sum((g == 0).sum().item() for g in block) / max(1, sum(g.numel() for g in block)) for block in grads]
    log_record(ctx, {"kind": "layers", "step": ctx.run.step + 1, "grad_norm": norms, "grad_zero_pct": zeros,
                     **{k: [round(v, 4) for v in vals] for k, vals in stats.items()}})


# -----------------------------------------------------------------------------
# 2. Evidence: the batch that tripped the monitor, worst row first


def first_nonfinite_hooks(model, found):
    """Forward hooks on every module of model that append the name of each module whose output holds a
    NaN or inf to `found`. A hook fires when its module finishes, children before their parent, so
    found[0] is the innermost module where the numbers first broke (e.g. transformer.h.3.attn.c_attn)."""
    def hook(name):
        def record(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            if torch.is_tensor(out) and out.is_floating_point() and not torch.isfinite(out).all():
                found.append(name)
        return record
    return [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]


def first_nonfinite_grad(model):
    """The first parameter, in backward order (the head first), whose gradient holds a NaN or inf; None."""
    names = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    return names[-1] if names else None


@torch.no_grad()
def dump_batch(ctx, xy, starts, step, data_step, locate=False):
    """xy (B, T + 1): the first rows of the global batch of data_step, starts (B,) their offsets in
    train.bin. Every rank runs the forward (FSDP needs them all); rank 0 writes out_dir/events/ and
    returns (the file's path, the broken layer): offset, loss, ids and text of each row, the worst row
    first. locate: forward hooks name the first layer whose output went non-finite on this batch, or,
    when the forward is finite, the first non-finite gradient of the step (a backward overflow)."""
    x, y = xy[:, :-1].to(ctx.device), xy[:, 1:].to(ctx.device)
    found = []
    hooks = first_nonfinite_hooks(ctx.model, found) if locate else []
    with ctx.autocast:
        logits, _ = ctx.forward(x)  # (B, T, vocab)
    for h in hooks:
        h.remove()
    broken = None
    if locate:
        grad = first_nonfinite_grad(ctx.model)
        broken = f"forward: {found[0]}" if found else f"backward: {grad}.grad" if grad else "none found"
    row_loss = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").mean(1).tolist()  # (B,)
    if ctx.rank != 0:
        return None, broken
    rows = [{"row": i, "start": int(starts[i]), "loss": row_loss[i], "tokens": xy[i].tolist(),
             "text": ctx.enc.decode([t for t in xy[i].tolist() if t < ctx.enc.n_vocab])}
            for i in sorted(range(len(starts)), key=lambda i: -row_loss[i])]
    path = Path(ctx.out_dir) / "events" / f"batch_{step:07d}_data{data_step:07d}.json"
    write_json(path, {"step": step, "data_step": data_step, "first_nonfinite_layer": broken, "rows": rows})
    return str(path), broken


def collect_evidence(ctx, train_rows, anomaly, data_step):
    """Before the update: the batch of data_step dumped (its first 32 rows), and for a NaN/inf the layer
    that broke. train_rows(ctx, data_step, first, count) is train.py's reader. -> (data_step, file, layer)"""
    xy, starts = train_rows(ctx, data_step, 0, min(32, ctx.rows_per_step))
    return (data_step, *dump_batch(ctx, xy, starts, ctx.run.step + 1, data_step, locate=anomaly == "nan"))


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


def rollback_ramp(cfg, step, ramp_end):
    """The LR multiplier after a rollback: rollback_lr_mult at the restored step, rising linearly to 1 at
    ramp_end = that step + rollback_lr_steps (the seeds' 004: "drop the LR 50%, then raise it gradually"):
    a jump straight back to the LR that broke the run could break it again."""
    if step >= ramp_end or cfg.rollback_lr_steps <= 0:
        return 1.0
    done = 1 - (ramp_end - step) / cfg.rollback_lr_steps  # 0 at the restored step
    return cfg.rollback_lr_mult + (1 - cfg.rollback_lr_mult) * done


def event_record(step, anomaly, action, detail, loss, grad_norm, evidence, rows, restored, time_s):
    """The metrics.jsonl line of one anomaly: what was seen, what was done, where the evidence is."""
    data_step, batch_file, broken = evidence
    return {"kind": "event", "step": step, "event": anomaly, "action": action, "detail": detail,
            "loss": loss, "grad_norm": grad_norm, "data_step": data_step,
            "rows": f"0..{rows - 1} of the batch of data step {data_step}", "batch_file": batch_file,
            "first_nonfinite_layer": broken, "restored": restored, "time_s": time_s}


def handle_anomaly(ctx, anomaly, detail, evidence, loss, grad_norm, rollback):
    """Do what spike_policy says, log the event with its evidence; returns the action taken."""
    action, restored = respond(ctx.cfg, anomaly, rollback)
    time_s = round(ctx.time_offset + time.time() - ctx.t_start, 3)
    log_record(ctx, event_record(ctx.run.step + 1, anomaly, action, detail, loss, grad_norm, evidence,
                                 ctx.rows_per_step, restored, time_s))
    if ctx.rank == 0:
        where = f"; first non-finite: {evidence[2]}" if evidence[2] else ""
        print(f"step {ctx.run.step + 1}: {anomaly} ({detail}{where}) -> {action}" + (f" to {restored}" if restored else ""))
    return action


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


def slow_reader(cfg, compute_s):
    """A data reader that cannot keep up (a network disk, a tokenizer in the loop): every batch waits
    inject_slow_reader x the compute time of the last step, so 1.0 halves tokens/s at any model size."""
    if cfg.inject_slow_reader > 0:
        time.sleep(cfg.inject_slow_reader * compute_s)


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


def log_train(ctx, loss, grad_norm, lr, seconds, time_s):
    """The log line and train record; throughput is measured over the steps since the last one.
    seconds = (whole step, waiting for data) per step: data wait near 0% means the loader keeps up."""
    step, tokens_per_step = ctx.run.step, ctx.rows_per_step * ctx.cfg.block_size
    step_seconds, data_seconds = seconds
    data_ms = 1000 * sum(data_seconds) / len(data_seconds)
    tokens_per_s = tokens_per_step * len(step_seconds) / sum(step_seconds)
    # MFU per device: model FLOPs done / the device's peak (bf16 dense); None on a CPU
    mfu_now = mfu(tokens_per_s / ctx.world_size, ctx.peak_flops, ctx.flops_per_token) if ctx.peak_flops else None
    peak_mb = torch.cuda.max_memory_allocated(ctx.device) / 2**20 if ctx.device.type == "cuda" else peak_rss_mb()
    record = {"kind": "train", "step": step, "tokens": step * tokens_per_step, "time_s": time_s,
              "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": round(tokens_per_s, 1),
              "mfu": mfu_now, "step_ms": round(1000 * sum(step_seconds) / len(step_seconds), 2),
              "data_ms": round(data_ms, 2), "peak_mem_mb": round(peak_mb, 1)}
    record["compute_ms"] = round(record["step_ms"] - data_ms, 2)
    log_record(ctx, record)
    if ctx.rank == 0:
        print(f"step {step:6d} | loss {loss:.4f} | lr {lr:.2e} | grad norm {grad_norm:.3f} | "
              f"{tokens_per_s:,.0f} tok/s | mfu {'-' if mfu_now is None else f'{100 * mfu_now:.1f}%'} | "
              f"{record['step_ms']:.0f} ms/step (data wait {data_ms:.0f}) | peak mem {record['peak_mem_mb']:,.0f} MiB",
              flush=True)
